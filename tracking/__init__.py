"""The MLflow adapter: the store and its client, a run's writes, lineage and provenance tags."""
