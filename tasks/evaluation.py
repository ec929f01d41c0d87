"""Evaluation of the final model on the test split, used once, never for selection."""

from __future__ import annotations

import mlflow.sklearn
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.outputs import write_json
from tasks.tracking import Tracker, log_values
from tunedag.config import Config
from tunedag.data import file_md5, load_prepared
from tunedag.metrics import score, usable_metrics


@task(cache_policy=NO_CACHE)
def evaluate_final_model(cfg: Config, tracker: Tracker, summary: dict) -> dict:
    """Score `paths.model_dir` on test; write `paths.test_metrics`; log them on the run and model version."""
    model = mlflow.sklearn.load_model(str(cfg.paths.model_dir))
    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    X, y = prep.xy("test")
    scores = {f"test_{k}": v for k, v in score(model, X, y, usable_metrics(model, prep.task, cfg.tune.metric)).items()}
    log_values(tracker.client, summary["parent_run_id"], metrics=scores)
    for version in tracker.client.search_model_versions(f"run_id = '{summary['parent_run_id']}'"):
        for key, value in scores.items():
            tracker.client.set_model_version_tag(version.name, version.version, key, str(value))
    write_json(cfg.paths.test_metrics, {**scores, f"best_val_{summary['metric']}": summary["best_value"]})
    return scores
