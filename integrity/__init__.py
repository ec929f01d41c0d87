"""DVC integrity checks: the lock, the prepared data's seal, files the pipeline owns."""
