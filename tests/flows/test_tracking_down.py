"""The MLflow server goes away mid-study: Optuna keeps every trial, the next run fills MLflow in."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from flows.prepare import prepare_flow
from tests.flows.conftest import SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, study_runs
from tests.flows.services import start_mlflow_server, stop
from tunedag.config import load_config
from tunedag.study import build_storage

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _complete(storage: str) -> int:
    backend = build_storage(storage)
    return sum(len(optuna.load_study(study_name=s.study_name, storage=backend).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
               for s in backend.get_all_studies())


def test_trials_finished_while_the_server_was_down_are_filled_in_on_the_next_run(project, tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow")
    server, url = start_mlflow_server(home)
    port = int(url.rsplit(":", 1)[1])
    overrides = {"tracking.uri": url, "tune.n_trials": 8, "tune.parallelism": 1}
    cfg = load_config(project / "params.yaml", {**SHRINK, **overrides})
    prepare_flow(cfg)
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    env = {**subprocess_env(), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    first = subprocess.Popen([sys.executable, "-m", "flows.tune", *sets], cwd=project, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while _complete(cfg.tune.storage) < 2:
        assert first.poll() is None and time.time() < deadline, first.stdout.read() if first.poll() is not None else "slow"
        time.sleep(0.2)
    stop(server)
    out = first.communicate(timeout=300)[0]
    assert first.returncode != 0, "the summary cannot be logged while the server is down"
    assert _complete(cfg.tune.storage) == 8, out[-3000:]  # every trial still ran and is kept in Optuna

    server, url = start_mlflow_server(home, port)
    try:
        again = subprocess.run([sys.executable, "-m", "flows.tune", *sets], cwd=project, env=env,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        study = check_ledger(cfg, n_complete=8)
        filled = [r for r in study_runs(cfg, study.study_name, "trial") if "tunedag.filled_in" in r.data.tags]
        assert filled, "trials finished while the server was down are recorded from Optuna"
    finally:
        stop(server)
