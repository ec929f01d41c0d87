"""The pipeline in one process on configs other than the default (whose run tests/flows/test_default_run.py checks)."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from flows.pipeline import pipeline_flow
from tests.flows.ledger import check_ledger, study_runs
from tracking.store import client_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


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
