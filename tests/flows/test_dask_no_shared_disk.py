"""Dask workers that cannot see the project folder: the multi-host recipe of docs/parallel.md on one machine.

A `dask scheduler` and a `dask worker --nworkers 2` run as separate commands; the workers run in a mount
namespace of their own where the project folder (params.yaml, the prepared data, the journal) and the
driver's temporary folder are empty tmpfs mounts, with their own working directory. They get the code
from the installed packages (PYTHONPATH), the prepared data from the runner (a worker plugin), the
study from PostgreSQL (the pruner reads it) and send each model to the MLflow server themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from flows.prepare import prepare_flow
from tests.flows.conftest import REPO, SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, study_runs
from tests.flows.services import free_port, start_mlflow_server, stop
from tests.support.commands import TUNEDAG
from tracking.store import client_for
from tunedag.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

pgserver = pytest.importorskip(
    "pgserver", reason="the PostgreSQL tests need a server: pip install pgserver (part of the test extra)"
)


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


@pytest.fixture
def cluster(project, tmp_path_factory):
    """A scheduler, and 2 workers for which `project` and the driver's TMPDIR are empty."""
    elsewhere = tmp_path_factory.mktemp("worker-home")
    (elsewhere / "tmp").mkdir()
    port, env = free_port(), {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(elsewhere / "tmp")}
    address = f"tcp://127.0.0.1:{port}"
    python = [sys.executable, "-m"]
    scheduler = subprocess.Popen(
        [*python, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        cwd=elsewhere,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    hide = f'mount -t tmpfs none {project} && mount -t tmpfs none {elsewhere / "tmp"} && exec "$@"'
    worker_cmd = [*python, "distributed.cli.dask_worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"]
    workers = subprocess.Popen(
        [shutil.which("unshare"), "-m" if os.geteuid() == 0 else "-rm", "sh", "-c", hide, "sh", *worker_cmd],
        cwd=elsewhere,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            assert set(client.run(os.getcwd).values()) == {str(elsewhere)}
            assert not any(client.run(os.path.exists, str(project / "params.yaml")).values()), "the workers see the project"
        yield address
    finally:
        stop(workers)
        stop(scheduler)


def test_workers_without_the_project_folder_complete_the_study(project, cluster, postgres_url, mlflow_server):
    n_trials = 6
    overrides = {
        **SHRINK,
        "tune.n_trials": n_trials,
        "tune.storage": postgres_url,
        "tracking.uri": mlflow_server,
        "tune.runner": f"{{kind: dask, address: '{cluster}'}}",
        "tune.executor": "process",  # the Dask runner enforces the same limits as the process pool
        "tune.trial_timeout": 120,
        "tune.fidelity.kind": "train_fraction",
        "tune.pruner": f"{{name: median, n_startup_trials: {n_trials}}}",  # never prunes; the workers report to PostgreSQL
    }
    cfg = load_config(project / "params.yaml", {k: yaml.safe_load(str(v)) for k, v in overrides.items()})
    prepare_flow(cfg)
    args = [a for key, value in overrides.items() for a in ("--set", f"{key}={value}")]
    env = {**subprocess_env(), "PYTHONPATH": str(REPO)}
    done = subprocess.run([*TUNEDAG, "tune", *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    study = check_ledger(cfg, n_complete=n_trials)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n_trials and all(len(t.intermediate_values) == 3 for t in trials)
    client = client_for(mlflow_server)
    runs = study_runs(cfg, study.study_name, "trial")
    assert len(runs) == n_trials
    for run in runs:
        assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {"model/MLmodel"}, run.info.run_id
