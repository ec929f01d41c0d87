"""Distributed trials against real services: PostgreSQL (pgserver), a Dask LocalCluster, an MLflow server.

The tune flow sends its trials to a Dask LocalCluster of 2 worker processes while an independent
worker process joins the same study; both log to an `mlflow server` on 127.0.0.1 and share one
PostgreSQL Optuna storage and one global trial budget.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from flows.prepare import prepare_flow
from tests.flows.conftest import SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, load_study, study_runs
from tests.flows.services import start_mlflow_server, stop
from tasks.tracking import TAG_TRIAL, client_for
from tunedag.config import load_config
from tunedag.study import PARENT_RUN_ATTR, build_storage

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

pgserver = pytest.importorskip("pgserver", reason="the PostgreSQL tests need a server: pip install pgserver (part of the test extra)")


@pytest.fixture
def postgres_url(tmp_path_factory):
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def mlflow_server(tmp_path_factory):
    proc, url = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield url
    stop(proc)


def _cli(project: Path, module: str, overrides: dict) -> subprocess.Popen:
    args = [a for key, value in overrides.items() for a in ("--set", f"{key}={value}")]
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=project, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_dask_trials_and_a_second_worker_share_one_budget(project, postgres_url, mlflow_server):
    n_trials = 10
    overrides = {**{k: v for k, v in SHRINK.items() if k != "search_space.n_estimators"},
                 "search_space.n_estimators": "{type: int, low: 5, high: 40, log: true}",
                 "tune.n_trials": n_trials, "tune.storage": postgres_url, "tracking.uri": mlflow_server,
                 "tune.runner.kind": "dask", "tune.sampler.constant_liar": "true"}
    cfg = load_config(project / "params.yaml", {k: _yaml(v) for k, v in overrides.items()})
    prepare_flow(cfg)

    main = _cli(project, "flows.tune", overrides)
    storage = build_storage(postgres_url)
    deadline = time.time() + 180
    while not _has_parent(storage):
        assert main.poll() is None, main.stdout.read()
        assert time.time() < deadline, "the tune flow did not create its study"
        time.sleep(0.5)
    worker = _cli(project, "flows.worker", {**overrides, "tune.runner.kind": "local"})
    worker_out, main_out = worker.communicate(timeout=400)[0], main.communicate(timeout=400)[0]
    assert worker.returncode == 0, worker_out[-3000:]
    assert main.returncode == 0, main_out[-3000:]

    study = check_ledger(cfg, n_complete=n_trials)
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    assert len(numbers) == len(set(numbers))
    runs = study_runs(cfg, study.study_name, "trial")
    assert len({r.data.tags[TAG_TRIAL] for r in runs}) == len(runs) == len(numbers)
    owners = {t.user_attrs["tunedag.worker"] for t in study.get_trials(deepcopy=False)}
    assert len(owners) == 2, "both the tune flow and the worker ran trials"
    assert len(client_for(mlflow_server).search_experiments(filter_string=f"name = '{cfg.tracking.experiment}'")) == 1
    assert load_study(cfg).study_name == study.study_name


def _has_parent(storage) -> bool:
    for summary in storage.get_all_studies():
        if PARENT_RUN_ATTR in summary.user_attrs:
            return True
    return False


def _yaml(value):
    import yaml

    return yaml.safe_load(value) if isinstance(value, str) else value
