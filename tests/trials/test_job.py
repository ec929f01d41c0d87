"""The worker side of a trial: a result record for every outcome, model files on disk, never an exception."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import optuna
import pandas as pd

from compat.optuna import trial_id
from studies.storage import build_storage, open_study
from trials.job import TrialJob, run_job
from tunedag.config import load_config
from tunedag.data import file_md5


def _job(cfg, params, model_dir, prune=False, trial_id=0, study_name="x") -> TrialJob:
    return TrialJob(cfg, file_md5(cfg.paths.prepared), study_name, trial_id, 0, params, prune, str(model_dir))


PARAMS = {"n_estimators": 8, "max_depth": 3, "min_samples_leaf": 2, "max_features": "sqrt", "criterion": "gini"}


def test_a_complete_trial_returns_scores_and_writes_a_loadable_model_folder(cfg, tmp_path):
    result = run_job(_job(cfg, PARAMS, tmp_path / "model"))
    assert result.state == "COMPLETE" and 0.5 < result.values[0] <= 1.0
    assert result.metrics["roc_auc"] == result.values[0]
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    X = pd.read_parquet(cfg.paths.prepared).drop(columns=["target", "__split__"]).head(3)
    assert len(model.predict(X)) == 3


def test_a_failing_configuration_becomes_a_fail_record(cfg, tmp_path):
    result = run_job(_job(cfg, {**PARAMS, "max_depth": -4}, tmp_path / "model"))
    assert result.state == "FAIL" and "max_depth" in result.error and result.traceback
    assert not (tmp_path / "model").exists()


def test_pruning_reports_to_the_trial_in_the_shared_storage(cfg, tmp_path):
    cfg = load_config(
        "params.yaml",
        {
            **{k: v for k, v in [("paths.prepared", str(cfg.paths.prepared)), ("tune.storage", cfg.tune.storage)]},
            "tune.fidelity.kind": "ensemble_size",
            "tune.pruner": {"name": "percentile", "percentile": 99.0, "n_startup_trials": 0, "n_warmup_steps": 0},
        },
    )
    study = open_study(cfg, file_md5(cfg.paths.prepared))
    for value in (1.0, 1.0):  # earlier trials that were perfect at every step
        t = study.ask()
        for step in range(1, 5):
            t.report(value, step)
        study.tell(t, value)
    trial = study.ask()
    result = run_job(_job(cfg, PARAMS, tmp_path / "model", prune=True, trial_id=trial_id(trial), study_name=study.study_name))
    assert result.state == "PRUNED" and result.pruned_at == 1
    stored = optuna.load_study(study_name=study.study_name, storage=build_storage(cfg.tune.storage)).trials[trial.number]
    assert stored.intermediate_values == {1: result.values[0]}


def test_a_model_needing_a_type_beyond_the_remembered_list_is_saved_after_a_lookup(tmp_path, monkeypatch):
    """The worker remembers an estimator's skops types; a model that needs more is looked up, never saved unloadable."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from modelio import mlflow_models
    from tests.support.misbehaving import shift_features
    from trials import job as trial_worker

    extra = ["tests.support.misbehaving.shift_features"]
    monkeypatch.setattr(mlflow_models, "_TRUSTED", {})
    cfg = SimpleNamespace(model=SimpleNamespace(trusted_types=extra))

    def save(model, name):
        return trial_worker._save_model(trial_worker.TrialJob(cfg, "v", "s", 0, 0, {}, False, str(tmp_path / name)), model)

    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    save(Pipeline([("model", LogisticRegression())]).fit(X, y), "a")
    assert list(mlflow_models._TRUSTED.values()) == [[]]
    # The same final estimator after a step of a type the first model did not hold: looked up again, then saved.
    richer = Pipeline([("shift", FunctionTransformer(shift_features)), ("model", LogisticRegression())]).fit(X, y)
    save(richer, "b")
    assert list(mlflow_models._TRUSTED.values()) == [extra]
    assert (mlflow.sklearn.load_model(str(tmp_path / "b")).predict(X) == richer.predict(X)).all()
    save(RandomForestClassifier(n_estimators=2).fit(X, y), "c")
    assert len(mlflow_models._TRUSTED) == 2, "one list per estimator"
