"""Stage 1: read the configured data source and write the split, prepared dataset."""

from __future__ import annotations

from prefect import flow

from tasks.data import prepare_dataset
from tunedag.config import Config


@flow(name="prepare")
def prepare_flow(cfg: Config) -> dict:
    """Write `paths.prepared` from `data` and return its summary."""
    return prepare_dataset(cfg)


if __name__ == "__main__":
    from flows._cli import main

    raise SystemExit(main(prepare_flow, __doc__))
