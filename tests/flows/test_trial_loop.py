"""The trial loop's order of record: when Optuna hears of a trial, its MLflow run is already written and closed."""

from __future__ import annotations

import optuna
import pytest

from flows.prepare import prepare_flow
from flows.tune import tune_flow
from tasks.tracking import MODEL_ARTIFACT, client_for, local_artifact_dir
from tests.flows.ledger import check_ledger

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_each_trial_is_told_only_after_its_run_and_model_are_written(make_config, monkeypatch):
    cfg = make_config(**{"tune.n_trials": 4, "tune.parallelism": 2})
    seen: list[tuple[int, str, bool]] = []
    real_tell = optuna.Study.tell

    def tell(self, trial, values=None, state=None, **kw):
        if isinstance(trial, optuna.Trial) and "mlflow_run_id" in trial.user_attrs:
            run = client_for(cfg.tracking.uri).get_run(trial.user_attrs["mlflow_run_id"])
            model = local_artifact_dir(run.info.artifact_uri) / MODEL_ARTIFACT / "MLmodel"
            seen.append((trial.number, run.info.status, model.is_file()))
        return real_tell(self, trial, values, state, **kw)

    monkeypatch.setattr(optuna.Study, "tell", tell)
    prepare_flow(cfg)
    tune_flow(cfg)

    assert sorted(n for n, _, _ in seen) == [0, 1, 2, 3]
    assert all(status == "FINISHED" and has_model for _, status, has_model in seen), seen
    check_ledger(cfg, n_complete=4)
