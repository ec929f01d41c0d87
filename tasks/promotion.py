"""Promotion in the MLflow registry: the new version becomes `champion` only when it beats the champion."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow.exceptions import MlflowException
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.evaluation import load_final_model
from tasks.tracking import Tracker, log_values
from tasks.training import FINAL_ARTIFACT, registered_versions
from tunedag.config import Config
from tunedag.data import file_md5, load_prepared
from tunedag.metrics import score
from tunedag.promotion import CHAMPION, Promotion, decide

TAG_PROMOTION = "tunedag.promotion"


@task(cache_policy=NO_CACHE)
def promote_final_model(cfg: Config, tracker: Tracker, summary: dict, scores: dict) -> Promotion | None:
    """Give the version registered by this pipeline run the alias `champion` or `challenger`, with the reason.

    The champion is scored again on the current test split, so both versions are judged on the
    same rows. Returns None when this run registered no version (a train_fn family).
    """
    client, name, metric = tracker.client, cfg.final.registered_model, cfg.tune.metric
    versions = registered_versions(tracker, summary)
    if not versions:
        return None
    new = max(versions, key=lambda v: int(v.version))
    champion = _current_champion(tracker, name)
    if champion is not None and champion.version == new.version:
        return Promotion(CHAMPION, f"version {new.version} is already the champion")
    old, error = (None, None) if champion is None else _score_version(cfg, tracker, champion, metric)
    decision = decide(metric, cfg.tune.resolved_direction, (new.version, scores.get(f"test_{metric}")),
                      None if champion is None else (champion.version, old), error)
    client.set_registered_model_alias(name, decision.alias, new.version)
    client.set_model_version_tag(name, new.version, TAG_PROMOTION, decision.reason)
    log_values(client, summary["parent_run_id"], tags={TAG_PROMOTION: decision.reason, "tunedag.alias": decision.alias})
    get_run_logger().info("%s: %s -> %s", name, decision.reason, decision.alias)
    return decision


def _current_champion(tracker: Tracker, name: str):
    try:
        return tracker.client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no alias yet (or no such model)
        return None


def _score_version(cfg: Config, tracker: Tracker, version, metric: str) -> tuple[float | None, str | None]:
    """The version's `metric` on the current test split, or why it could not be computed."""
    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    X, y = prep.xy("test")
    with tempfile.TemporaryDirectory(prefix="tunedag-champion-") as tmp:
        try:
            folder = tracker.client.download_artifacts(version.run_id, FINAL_ARTIFACT, tmp)
            model = load_final_model(Path(folder), cfg.model.trusted_types)
            return score(model, X, y, [metric]).get(metric), None
        except Exception as exc:  # the champion was trained on other features, or its artifact is gone
            return None, " ".join(f"{type(exc).__name__}: {exc}".split())[:300]

