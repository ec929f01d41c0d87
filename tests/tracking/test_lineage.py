"""Lineage in MLflow: the dataset input, the registry bound to one problem, promotion on rows neither version saw."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tasks.promotion as promotion
from modelio.mlflow_models import save_sklearn_model
from reporting.render import ReportContext, format_summary
from reporting.status import status_lines
from studies.storage import open_study
from tasks.report import data_facts
from tasks.training import FINAL_ARTIFACT, ROLE_FINAL, latest_final_run
from tests.tunedag.conftest import PARAMS
from tracking.lineage import TAG_TRAINING_ROWS, check_registry_problem, log_dataset, training_rows
from tracking.runs import start_run
from tracking.store import Tracker, open_tracker
from tracking.tags import TAG_ROLE
from tunedag.config import load_config
from tunedag.data import file_md5, load_prepared, prepare, save_prepared
from tunedag.errors import TunedagError
from tunedag.metrics import score
from tunedag.problem import TAG_PROBLEM, problem_of
from tunedag.promotion import row_hashes, unseen_rows

NAME = "tunedag-model"


@pytest.fixture
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


@pytest.fixture
def cfg(tmp_path: Path):
    return load_config(
        PARAMS,
        {
            "tracking.uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "tracking.artifact_root": str(tmp_path / "mlruns"),
            "paths.prepared": str(tmp_path / "prepared.parquet"),
            "data.source": "file",
            "tune.storage": str(tmp_path / "study.journal"),
            "data.path": str(tmp_path / "raw.csv"),
            "data.target": "target",
        },
    )


@pytest.fixture
def tracker(cfg, empty_mlflow_store) -> Tracker:
    empty_mlflow_store(cfg.tracking.uri)
    return open_tracker(cfg.tracking)


@pytest.fixture(autouse=True)
def plain_logger(monkeypatch):
    monkeypatch.setattr(promotion, "get_run_logger", lambda: logging.getLogger("test"))  # the task's body run outside a flow


def _prepare(cfg, frame: pd.DataFrame, target: str = "target"):
    save_prepared(prepare(frame, target, cfg.data, cfg.seed, "raw.csv"), cfg.paths.prepared)
    version = file_md5(cfg.paths.prepared)
    return load_prepared(cfg.paths.prepared, version), version


def _register(cfg, tracker: Tracker, tmp_path: Path, label: str, C: float = 1.0) -> tuple[str, dict]:
    """Fit on train + val of the current prepared data, register as a new version (as the train stage does); return the pipeline run and test scores."""
    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    X, y = prep.xy("train", "val")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X, y)
    save_sklearn_model(model, tmp_path / label, [])
    parent = tracker.client.create_run(tracker.experiment_id).info.run_id  # the pipeline run
    run_id = start_run(tracker, f"final-{label}", {TAG_ROLE: ROLE_FINAL}, parent).info.run_id  # the train stage's own run
    tracker.client.log_artifacts(run_id, str(tmp_path / label), FINAL_ARTIFACT)
    if not tracker.client.search_registered_models(f"name = '{NAME}'"):
        tracker.client.create_registered_model(NAME)
    tracker.client.create_model_version(NAME, source=f"runs:/{run_id}/{FINAL_ARTIFACT}", run_id=run_id)
    Xt, yt = prep.xy("test")
    return parent, {"test_roc_auc": score(model, Xt, yt, ["roc_auc"])["roc_auc"]}


def _alias(tracker: Tracker, alias: str) -> str:
    return str(tracker.client.get_model_version_by_alias(NAME, alias).version)


def test_the_run_has_the_data_as_a_dataset_input_with_its_digest_source_and_target(cfg, tracker, cancer):
    prep, version = _prepare(cfg, cancer)
    run_id = tracker.client.create_run(tracker.experiment_id).info.run_id

    log_dataset(tracker.client, run_id, prep, cfg, version)
    log_dataset(tracker.client, run_id, prep, cfg, version)  # the tune flow and the evaluate stage both log it: recorded once

    (entry,) = tracker.client.get_run(run_id).inputs.dataset_inputs
    dataset = entry.dataset
    assert dataset.digest == version and str(cfg.paths.prepared.resolve()) in dataset.source
    assert dataset.name == f"{cfg.data.path} -> target" and '"mean radius"' in dataset.schema
    assert [(t.key, t.value) for t in entry.tags] == [("mlflow.data.context", "training")]


def test_another_problem_under_the_same_registered_model_is_refused_naming_both(cfg, tracker, cancer, tmp_path):
    check_registry_problem(cfg, problem_of(_prepare(cfg, cancer)[0]))  # no model yet: nothing to refuse
    parent, _ = _register(cfg, tracker, tmp_path, "v1")
    promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": parent}, {"test_roc_auc": 0.9})
    first = problem_of(load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared)))
    churn = cancer.rename(columns={"target": "churn"}).drop(columns=["mean radius"])
    other = problem_of(prepare(churn, "churn", cfg.data, cfg.seed, "churn.csv"))

    check_registry_problem(cfg, first)  # the same problem: accepted
    with pytest.raises(TunedagError) as refused:
        check_registry_problem(cfg, other)

    text = str(refused.value)
    assert "final.registered_model 'tunedag-model'" in text and first.id in text and other.id in text
    assert "'churn'" in text and "'target'" in text and "\n" not in text
    assert tracker.client.get_registered_model(NAME).tags[TAG_PROBLEM] == first.id


def test_a_missing_store_binds_nothing_and_is_not_created(cfg, cancer):
    check_registry_problem(cfg, problem_of(_prepare(cfg, cancer)[0]))

    assert not Path(cfg.tracking.uri.removeprefix("sqlite:///")).exists()


def test_promotion_scores_both_versions_only_on_test_rows_neither_was_fitted_on(cfg, tracker, cancer, tmp_path):
    _prepare(cfg, cancer.iloc[:400])
    run1, scores1 = _register(cfg, tracker, tmp_path, "v1")
    promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run1}, scores1)
    old = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    prep, _ = _prepare(cfg, cancer)  # rows added: the same problem, a new split
    run2, scores2 = _register(cfg, tracker, tmp_path, "v2", C=0.01)

    decision = promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run2}, scores2)

    test = prep.xy("test")[0].assign(target=prep.xy("test")[1])
    seen_by_v1 = row_hashes(old.xy("train", "val")[0].assign(target=old.xy("train", "val")[1]))
    mask = unseen_rows(test, seen_by_v1)
    assert 30 <= mask.sum() < len(mask)  # some test rows were v1's training rows: they are left out
    assert f"on the {mask.sum()} of its {len(mask)} rows neither was fitted on" in decision.reason
    (v1,) = [v for v in tracker.client.search_model_versions(f"name = '{NAME}'") if str(v.version) == "1"]
    np.testing.assert_array_equal(training_rows(tracker.client, v1), np.sort(seen_by_v1))
    by_hand = {}
    for version in ("1", "2"):
        model = promotion.load_final_model(
            Path(
                tracker.client.download_artifacts(
                    tracker.client.get_model_version(NAME, version).run_id, FINAL_ARTIFACT, str(tmp_path / f"dl{version}")
                )
            )
        )
        by_hand[version] = score(model, prep.xy("test")[0][mask], prep.xy("test")[1][mask], ["roc_auc"])["roc_auc"]
    assert f"{by_hand['2']:.6g} vs {by_hand['1']:.6g}" in decision.reason
    assert _alias(tracker, "champion") == ("2" if by_hand["2"] > by_hand["1"] else "1")
    run = tracker.client.get_run(run2).data.tags
    assert run[promotion.TAG_PROMOTION] == decision.reason and "tunedag.alias" not in run
    assert run[promotion.TAG_ALIAS_AT_THE_TIME] == decision.alias


def test_too_few_unseen_test_rows_leave_the_champion_where_it_is_and_say_so(cfg, tracker, cancer, tmp_path):
    _prepare(cfg, cancer)
    run1, scores1 = _register(cfg, tracker, tmp_path, "v1")
    promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run1}, scores1)
    _prepare(cfg, cancer.sample(frac=1.0, random_state=7).iloc[:450])  # fewer rows, reshuffled: a new split of seen rows

    run2, scores2 = _register(cfg, tracker, tmp_path, "v2", C=100.0)
    decision = promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run2}, scores2)

    assert _alias(tracker, "champion") == "1" and _alias(tracker, "challenger") == "2"
    assert "champion version 1 keeps the alias: only" in decision.reason and "too few to compare them fairly" in decision.reason
    assert tracker.client.get_model_version(NAME, "2").tags[TAG_TRAINING_ROWS].startswith("360 rows")


def test_a_version_is_never_compared_with_itself(cfg, tracker, cancer, tmp_path):
    _prepare(cfg, cancer)
    run1, scores1 = _register(cfg, tracker, tmp_path, "v1")
    promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run1}, scores1)
    final = latest_final_run(tracker, {"parent_run_id": run1})
    tracker.client.create_model_version(NAME, source=f"runs:/{final}/{FINAL_ARTIFACT}", run_id=final)  # the same model again

    decision = promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run1}, scores1)

    assert _alias(tracker, "champion") == "1" and "a version is never compared with itself" in decision.reason


def test_a_long_reason_is_stored_whole(cfg, tracker, cancer, tmp_path, monkeypatch):
    _prepare(cfg, cancer)
    run1, scores1 = _register(cfg, tracker, tmp_path, "v1")
    promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run1}, scores1)
    run2, scores2 = _register(cfg, tracker, tmp_path, "v2")
    long_error = "columns are missing: " + ", ".join(f"'feature number {i}'" for i in range(60))  # ~1,300 characters
    real = promotion._score_version
    monkeypatch.setattr(
        promotion,
        "_score_version",
        lambda cfg, version, *a: (None, long_error) if str(version.version) == "1" else real(cfg, version, *a),
    )

    decision = promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run2}, scores2)

    assert decision.reason.endswith(long_error) and len(decision.reason) > 1300
    assert tracker.client.get_model_version(NAME, "2").tags[promotion.TAG_PROMOTION] == decision.reason
    assert tracker.client.get_run(run2).data.tags[promotion.TAG_PROMOTION] == decision.reason


def test_status_and_the_report_name_the_data_file_target_problem_and_registry(cfg, tracker, cancer, tmp_path):
    prep, version = _prepare(cfg, cancer)
    run1, scores1 = _register(cfg, tracker, tmp_path, "v1")
    decision = promotion.promote_final_model.fn(cfg, tracker, {"parent_run_id": run1}, scores1)
    problem = problem_of(prep)

    lines = status_lines(cfg)
    facts = data_facts(cfg, open_study(cfg, version), {"data_version": version})

    assert (
        lines[0]
        == f"data: {cfg.data.path}, target 'target' (classification), prepared as {cfg.paths.prepared}, version {version[:8]}"
    )
    assert lines[1].startswith(
        f"problem: {problem.id} (classification of 'target' from 30 columns: area error, compactness error,"
    )
    assert f"registered model: {NAME} serves problem {problem.id}" in lines
    assert f"champion: {NAME} version 1: {decision.reason}" in lines
    assert (
        facts["data"].startswith(f"{cfg.data.path}, prepared as {cfg.paths.prepared}")
        and facts["target"] == "'target' (classification)"
    )
    assert facts["problem"] == problem.describe() and facts["warm start"] == "none (started cold)"
    summary = {
        "study_name": "s",
        "best_trial": 0,
        "metric": "roc_auc",
        "score_prefix": "val",
        "best_values": [0.9],
        "best_params": {},
    }
    text = format_summary(ReportContext(summary, {}, {"complete": 1}, data=facts))
    assert f"  data: {facts['data']}" in text and f"  problem: {problem.describe()}" in text
