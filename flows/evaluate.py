"""Stage 4: score the final model once on the held-out test split; `champion` moves only to a better model."""

from __future__ import annotations

from prefect import flow

from integrity.checks import verify_prepared
from stageio.files import read_json
from tasks.evaluation import evaluate_final_model
from tasks.promotion import promote_final_model
from tracking.store import open_tracker
from tunedag.config import Config


@flow(name="evaluate")
def evaluate_flow(cfg: Config) -> dict:
    """Write `paths.test_metrics`, log the test scores on the pipeline run, then promote or not."""
    summary = read_json(cfg.paths.tune_summary, "paths.tune_summary")
    verify_prepared(cfg)  # a corrupted or changed prepared file stops here, before anything is written
    tracker = open_tracker(cfg.tracking)
    scores = evaluate_final_model(cfg, tracker, summary)
    promote_final_model(cfg, tracker, summary, scores)
    return scores
