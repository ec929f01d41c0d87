"""Stage 1: read the configured data source and write the split, prepared dataset."""

from __future__ import annotations

from prefect import flow

from tasks.data import prepare_dataset, verify_source
from tunedag.config import Config


@flow(name="prepare")
def prepare_flow(cfg: Config) -> dict:
    """Write `paths.prepared` from `data` and return its summary."""
    if cfg.data.path is not None and cfg.data.source not in ("sklearn", "synthetic"):
        verify_source(cfg)  # a DVC-tracked data file that differs from its record stops here
    return prepare_dataset(cfg)
