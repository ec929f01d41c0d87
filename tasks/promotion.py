"""Promotion in the MLflow registry: the new version becomes `champion` only when it beats the champion
on test rows neither of them was fitted on."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.artifacts
import numpy as np
from mlflow.exceptions import MlflowException
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.evaluation import load_final_model
from tasks.training import registered_versions
from tracking.lineage import TAG_TRAINING_ROWS, bind_version, record_training_rows, training_rows
from tracking.runs import log_values
from tracking.store import Tracker, absolute_uri
from tracking.tags import TAG_DATA_VERSION, TAG_PROMOTION
from tunedag.config import Config
from tunedag.data import Prepared, file_md5, load_prepared
from tunedag.metrics import score
from tunedag.problem import TAG_PROBLEM, Problem, problem_of
from tunedag.promotion import CHALLENGER, CHAMPION, Promotion, decide, row_hashes, too_few_unseen, unseen_rows

TAG_ALIAS_AT_THE_TIME = "tunedag.promoted_to_at_the_time"  # on the pipeline run; the registry says where the alias is now


@task(cache_policy=NO_CACHE)
def promote_final_model(cfg: Config, tracker: Tracker, summary: dict, scores: dict) -> Promotion | None:
    """Give the version registered by this pipeline run the alias `champion` or `challenger`, with the reason.

    The version is tagged with its problem and the rows it was fitted on (train + val, as content
    hashes). Both it and the champion are scored on the current test rows that neither was fitted
    on; with too few such rows, or a champion that is this very model, the champion stays.
    Returns None when this run registered no version (a train_fn family).
    """
    client, name = tracker.client, cfg.final.registered_model
    versions = registered_versions(tracker, summary)
    if not versions:
        return None
    new = max(versions, key=lambda v: int(v.version))
    data_version = file_md5(cfg.paths.prepared)
    prep = load_prepared(cfg.paths.prepared, data_version)
    problem, fitted = problem_of(prep), row_hashes(_rows(prep, "train", "val"))
    bind_version(client, name, new.version, problem)
    if TAG_TRAINING_ROWS not in new.tags:
        record_training_rows(client, name, new.version, new.run_id, fitted)
    champion = _current_champion(tracker, name)
    if champion is not None and champion.version == new.version:
        return Promotion(CHAMPION, f"version {new.version} is already the champion")
    decision = (
        decide(cfg.tune.metric, cfg.tune.resolved_direction, (new.version, scores.get(f"test_{cfg.tune.metric}")), None)
        if champion is None
        else _compare(cfg, tracker, prep, problem, data_version, fitted, new, champion)
    )
    client.set_registered_model_alias(name, decision.alias, new.version)
    client.set_model_version_tag(name, new.version, TAG_PROMOTION, decision.reason)
    log_values(client, summary["parent_run_id"], tags={TAG_PROMOTION: decision.reason, TAG_ALIAS_AT_THE_TIME: decision.alias})
    get_run_logger().info("%s: %s -> %s", name, decision.reason, decision.alias)
    return decision


def _compare(
    cfg: Config, tracker: Tracker, prep: Prepared, problem: Problem, data_version: str, fitted: np.ndarray, new, champion
) -> Promotion:
    """The decision between a new version and the champion, on the test rows neither was fitted on."""
    metric, keep = (
        cfg.tune.metric,
        f"version {new.version} stays challenger and champion version {champion.version} keeps the alias",
    )
    if champion.run_id == new.run_id or champion.source == new.source:
        return Promotion(
            CHALLENGER, f"{keep}: both are the same model (source {new.source}), and a version is never compared with itself"
        )
    theirs = champion.tags.get(TAG_PROBLEM)
    if theirs is not None and theirs != problem.id:
        return Promotion(
            CHALLENGER,
            f"{keep}: the champion serves problem {theirs} and this version problem {problem.id} "
            "(another target or other feature columns), so their scores are not comparable",
        )
    champion_rows = training_rows(tracker.client, champion)
    if champion_rows is None and champion.tags.get(TAG_DATA_VERSION) == data_version:
        champion_rows = fitted  # the same prepared file, so the same split: it was fitted on these rows
    test = _rows(prep, "test")
    mask = unseen_rows(test, fitted, *([champion_rows] if champion_rows is not None else []))
    if (few := too_few_unseen(int(mask.sum()), len(mask))) is not None:
        return Promotion(CHALLENGER, f"{keep}: {few}")
    rows = (
        f"the same test split, on the {int(mask.sum())} of its {len(mask)} rows neither was fitted on"
        if champion_rows is not None
        else f"the same test split ({len(mask)} rows; the rows champion version {champion.version} was fitted on are not recorded)"
    )
    X, y = prep.xy("test")
    w = None if (weights := prep.weights("test")) is None else weights[mask]  # data.weight: as the test metrics weigh rows
    new_score, _ = _score_version(cfg, new, X[mask], y[mask], metric, w)
    old, error = _score_version(cfg, champion, X[mask], y[mask], metric, w)
    return decide(metric, cfg.tune.resolved_direction, (new.version, new_score), (champion.version, old), error, rows)


def _rows(prep: Prepared, *splits: str):
    """The rows of `splits`, features and target: what a row's content hash covers."""
    X, y = prep.xy(*splits)
    return X.assign(**{prep.target: y})


def _current_champion(tracker: Tracker, name: str):
    try:
        return tracker.client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no alias yet (or no such model)
        return None


def _score_version(cfg: Config, version, X, y, metric: str, weight=None) -> tuple[float | None, str | None]:
    """The version's `metric` on (X, y), rows weighed by `weight` when given, or why it could not be computed (the whole message: reasons are never cut)."""
    with tempfile.TemporaryDirectory(prefix="tunedag-version-") as tmp:
        try:
            uri = absolute_uri(cfg.tracking.uri)
            folder = mlflow.artifacts.download_artifacts(
                artifact_uri=version.source, dst_path=tmp, tracking_uri=uri, registry_uri=uri
            )
            model = load_final_model(Path(folder), cfg.model.trusted_types)
            return score(model, X, y, [metric], weight).get(metric), None
        except Exception as exc:  # the champion's artifact is gone, or it cannot read these rows
            return None, " ".join(f"{type(exc).__name__}: {exc}".split())
