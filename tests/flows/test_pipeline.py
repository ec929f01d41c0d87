"""The whole pipeline in one process: every trial tracked, the model registered, test scores written."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from optuna.trial import TrialState

from flows.pipeline import pipeline_flow
from tasks.tracking import TAG_DATA_VERSION, TAG_FLOW_RUN, TAG_GIT, TAG_STUDY, absolute_uri, client_for
from tests.flows.ledger import check_ledger, study_runs
from tunedag.data import file_md5

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_pipeline_records_every_trial_and_registers_the_model(make_config):
    cfg = make_config()
    scores = pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=6)
    assert set(scores) >= {"test_accuracy", "test_roc_auc", "test_f1", "test_log_loss", "test_balanced_accuracy"}
    assert scores["test_roc_auc"] > 0.9
    children = study_runs(cfg, study.study_name, "trial")
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    data_version = file_md5(cfg.paths.prepared)
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags[TAG_DATA_VERSION] == data_version
        assert run.data.tags[TAG_GIT] and run.data.tags[TAG_FLOW_RUN] not in ("", "none")
    mlflow.set_tracking_uri(absolute_uri(cfg.tracking.uri))
    model = mlflow.pyfunc.load_model(f"runs:/{children[0].info.run_id}/model")
    X = pd.read_parquet(cfg.paths.prepared).drop(columns=["target", "__split__"]).head(5)
    assert len(model.predict(X)) == 5
    assert parent.data.metrics["test_roc_auc"] == scores["test_roc_auc"]
    (version,) = client_for(cfg.tracking.uri).search_model_versions(f"name = '{cfg.final.registered_model}'")
    final_run = client_for(cfg.tracking.uri).get_run(version.run_id)  # the version's own run, nested under the pipeline run
    assert final_run.data.tags["mlflow.parentRunId"] == parent.info.run_id and version.tags[TAG_STUDY] == study.study_name
    assert len(mlflow.pyfunc.load_model(f"models:/{cfg.final.registered_model}/{version.version}").predict(X)) == 5
    tune_metrics = json.loads(Path(cfg.paths.tune_metrics).read_text())
    assert tune_metrics["n_trials"] == 6 and tune_metrics["best_val_roc_auc"] == study.best_value
    history = pd.read_csv(cfg.paths.history_plot)
    assert list(history["trial"]) == [t.number for t in study.trials if t.state == TrialState.COMPLETE]


def test_raising_n_trials_adds_exactly_the_difference(make_config):
    pipeline_flow(make_config())
    cfg = make_config(tune__n_trials=11)
    pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=11)
    parents = sorted(study_runs(cfg, study.study_name, "pipeline"), key=lambda r: r.info.start_time)
    second = [
        r for r in study_runs(cfg, study.study_name, "trial") if r.data.tags["mlflow.parentRunId"] == parents[1].info.run_id
    ]
    assert len(parents) == 2 and len(second) == 5
    assert len(client_for(cfg.tracking.uri).search_model_versions(f"name = '{cfg.final.registered_model}'")) == 2


def test_failing_trials_are_recorded_and_the_study_goes_on(make_config):
    # oob_score=True passes the estimator's argument check at load time but fails when fitted without bootstrap
    cfg = make_config(
        model__fixed={"n_jobs": 1, "bootstrap": False}, search_space__oob_score={"type": "categorical", "choices": [False, True]}
    )
    pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=6)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all(t.params["oob_score"] is True for t in failed)
    runs = {r.data.tags["tunedag.trial"]: r for r in study_runs(cfg, study.study_name, "trial")}
    assert all("bootstrap" in runs[str(t.number)].data.tags["tunedag.error"] for t in failed)
    assert study.best_trial.params["oob_score"] is False


def test_a_csv_with_categories_and_missing_values_tunes_end_to_end(make_config):
    cfg = make_config(data__source="file", data__name=None, data__path="data/raw/example_churn.csv", data__target="churn")
    scores = pipeline_flow(cfg)

    check_ledger(cfg, n_complete=6)
    assert 0.5 < scores["test_roc_auc"] <= 1.0


def test_regression_with_cross_validation(make_config):
    cfg = make_config(
        data__name="diabetes",
        data__cv_folds=3,
        data__val_size=0.0,
        tune__metric="rmse",
        model__estimator="sklearn.linear_model.Ridge",
        model__fixed={},
        search_space={"alpha": {"type": "float", "low": 1e-3, "high": 100.0, "log": True}},
    )
    scores = pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=6)
    assert study.direction.name == "MINIMIZE" and "test_rmse" in scores and "test_r2" in scores
    run = study_runs(cfg, study.study_name, "trial")[0]
    history = client_for(cfg.tracking.uri).get_metric_history(run.info.run_id, "fold_rmse")
    assert [m.step for m in history] == [1, 2, 3]
