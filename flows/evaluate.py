"""Stage 4: score the final model once on the held-out test split."""

from __future__ import annotations

from prefect import flow

from tasks.evaluation import evaluate_final_model
from tasks.outputs import read_json
from tasks.tracking import open_tracker
from tunedag.config import Config


@flow(name="evaluate")
def evaluate_flow(cfg: Config) -> dict:
    """Write `paths.test_metrics` and log the test scores on the pipeline run."""
    summary = read_json(cfg.paths.tune_summary, "paths.tune_summary")
    return evaluate_final_model(cfg, open_tracker(cfg.tracking), summary)


if __name__ == "__main__":
    from flows._cli import main

    raise SystemExit(main(evaluate_flow, __doc__))
