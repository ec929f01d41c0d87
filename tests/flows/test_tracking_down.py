"""The MLflow server goes away mid-study: no trial is COMPLETE without its run; the study stops and the next run finishes it."""

from __future__ import annotations

import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from flows.prepare import prepare_flow
from modelio.mlflow_models import MODEL_ARTIFACT
from studies.storage import build_storage
from tests.flows.conftest import SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, study_runs
from tests.flows.services import start_mlflow_server, stop
from tests.support.commands import TUNEDAG, tunedag
from tracking.store import client_for
from tracking.tags import TAG_TRIAL
from tunedag.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _complete(storage: str) -> int:
    backend = build_storage(storage)
    return sum(
        len(optuna.load_study(study_name=s.study_name, storage=backend).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        for s in backend.get_all_studies()
    )


def test_trials_that_cannot_be_recorded_are_failed_and_requeued_and_the_next_run_finishes(project, tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("mlflow")
    server, url = start_mlflow_server(home)
    port = int(url.rsplit(":", 1)[1])
    overrides = {"tracking.uri": url, "tune.n_trials": 8, "tune.parallelism": 1, "tune.executor": "thread"}
    cfg = load_config(project / "params.yaml", {**SHRINK, **overrides})
    prepare_flow(cfg)
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    env = {**subprocess_env(), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    first = subprocess.Popen(
        [*TUNEDAG, "tune", *sets],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 240
    while _complete(cfg.tune.storage) < 2:
        assert first.poll() is None and time.time() < deadline, first.stdout.read() if first.poll() is not None else "slow"
        time.sleep(0.2)
    stop(server)
    out = first.communicate(timeout=300)[0]
    assert first.returncode != 0, out[-3000:]
    assert "failed mid-study" in out, out[-3000:]  # the study stops with why instead of running trials it cannot record
    assert 2 <= _complete(cfg.tune.storage) < 8, out[-3000:]

    server, url = start_mlflow_server(home, port)
    try:  # the next run, in this process: what it records is checked here, its output was checked above
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        assert tunedag("tune", *sets) == 0
        study = check_ledger(cfg, n_complete=8)
        runs = {int(r.data.tags[TAG_TRIAL]): r for r in study_runs(cfg, study.study_name, "trial")}
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE:  # every complete trial has its run and model, written before it was told
                assert MODEL_ARTIFACT in {a.path for a in client_for(url).list_artifacts(runs[t.number].info.run_id)}
            elif t.state == TrialState.FAIL:
                assert runs[t.number].data.tags["tunedag.error"].startswith("not recorded: MLflow failed")
        assert not [r for r in runs.values() if "tunedag.filled_in" in r.data.tags]
    finally:
        stop(server)
