"""Evaluation of the final model on the test split, used once, never for selection."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.models import Model
from prefect import task
from prefect.cache_policies import NO_CACHE

from modelio.torch_models import load_torch_model
from modelio.trust import load_sklearn_model
from stageio.files import write_json
from tasks.training import CUSTOM_RESULT, registered_versions
from tracking.lineage import log_dataset
from tracking.runs import log_values
from tracking.store import Tracker
from tunedag.config import Config
from tunedag.data import file_md5, load_prepared
from tunedag.metrics import score, usable_metrics
from tunedag.problem import problem_of, problem_tags
from tunedag.selection import best_score_key


@task(cache_policy=NO_CACHE)
def evaluate_final_model(cfg: Config, tracker: Tracker, summary: dict) -> dict:
    """Score the final model (and, beside an ensemble, the single best) on test; log and write the scores.

    The pipeline run also gets the data as its MLflow dataset input (once: a second log of the
    same data is a no-op), so the UI's Dataset column names the file, target and data version.
    """
    data_version = file_md5(cfg.paths.prepared)
    prep = load_prepared(cfg.paths.prepared, data_version)
    log_dataset(tracker.client, summary["parent_run_id"], prep, cfg, data_version)
    X, y = prep.xy("test")
    w = prep.weights("test")  # data.weight: test metrics weigh the rows as the trials' did
    scores = _test_scores(cfg, cfg.paths.model_dir, prep.task, X, y, "test_", w)
    if cfg.final.ensemble.kind != "none":
        scores |= _test_scores(cfg, cfg.paths.single_model_dir, prep.task, X, y, "single_best_test_", w)
    log_values(tracker.client, summary["parent_run_id"], metrics=scores, tags=problem_tags(problem_of(prep)))
    for version in registered_versions(tracker, summary):
        for key, value in scores.items():
            tracker.client.set_model_version_tag(version.name, version.version, key, str(value))
    write_json(
        cfg.paths.test_metrics,
        {**scores, best_score_key(summary): summary["best_value"]},
    )
    return scores


def _test_scores(cfg: Config, model_dir: Path, task: str, X, y, prefix: str, weight=None) -> dict[str, float]:
    if (model_dir / CUSTOM_RESULT).is_file():  # a train_fn family: its own code scored the test rows in the train stage
        return {f"{prefix}{k}": v for k, v in json.loads((model_dir / CUSTOM_RESULT).read_text())["test_metrics"].items()}
    model = load_final_model(model_dir, cfg.model.trusted_types)  # a hard-voting ensemble has no proba: its metrics only
    return {f"{prefix}{k}": v for k, v in score(model, X, y, usable_metrics(model, task, None), weight).items()}


def load_final_model(model_dir: Path, trusted_types: list[str] = ()):  # only reviewed skops types (and these)
    """A model folder the train stage wrote (or downloaded from the registry): MLflow sklearn or PyTorch."""
    if "pytorch" in Model.load(str(model_dir)).flavors:
        return load_torch_model(model_dir)
    return load_sklearn_model(model_dir, trusted_types)
