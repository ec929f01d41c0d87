"""Networks end to end: learning curves as MLflow steps, pruning per epoch, a PyTorch model registered."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from optuna.trial import TrialState

from flows.pipeline import pipeline_flow
from tests.flows.conftest import REPO
from tests.flows.ledger import check_ledger, load_study, study_runs
from tracking.store import absolute_uri, client_for
from tracking.tags import TAG_TRIAL
from tunedag.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

EPOCHS = 8


def test_digits_cnn_records_learning_curves_prunes_per_epoch_and_registers_a_torch_model(project: Path):
    shutil.copy(REPO / "examples" / "torch_digits.yaml", project / "params.yaml")
    cfg = load_config(
        project / "params.yaml",
        {
            "tune.n_trials": 6,
            "tune.parallelism": 2,
            "model.fixed.epochs": EPOCHS,
            "tune.enqueue": [],
            "tune.pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 2, "interval_steps": 1},
            "search_space.width": {"type": "categorical", "choices": [32, 64]},
        },
    )
    scores = pipeline_flow(cfg)

    pruned_runs = [
        r for r in study_runs(cfg, load_study(cfg).study_name, "trial") if r.data.tags.get("tunedag.state") == "PRUNED"
    ]
    study = check_ledger(cfg, n_complete=6 - len(pruned_runs))  # MLflow's count of pruned runs, checked against Optuna's
    client = client_for(cfg.tracking.uri)
    for run in study_runs(cfg, study.study_name, "trial"):
        trial = study.trials[int(run.data.tags[TAG_TRIAL])]
        history = client.get_metric_history(run.info.run_id, "epoch_val_loss")
        assert [m.step for m in history] == list(range(1, len(history) + 1)) and history
        assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch_train_loss")] == [m.step for m in history]
        if trial.state == TrialState.PRUNED:
            assert run.data.metrics["pruned_at_step"] == len(history) < EPOCHS
        else:
            assert len(history) == EPOCHS and "pruned_at_step" not in run.data.metrics, "a trial not pruned trains every epoch"
    assert scores["test_accuracy"] > 0.9
    mlflow.set_tracking_uri(absolute_uri(cfg.tracking.uri))
    (version,) = client.search_model_versions(f"name = '{cfg.final.registered_model}'")
    model = mlflow.pyfunc.load_model(f"models:/{cfg.final.registered_model}/{version.version}")
    X = pd.read_parquet(cfg.paths.prepared).drop(columns=["target", "__split__"]).head(4)
    # An array of our own: MLflow turns a DataFrame into a read-only view (pandas copy-on-write), which torch warns about.
    assert model.predict(X.to_numpy(copy=True)).shape == (4, 10)  # class probabilities, columns in metadata["classes"] order
