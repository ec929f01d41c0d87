"""Distributed trials against real services: PostgreSQL (pgserver), a Dask LocalCluster, an MLflow server.

The tune flow sends its trials to a Dask LocalCluster of 2 worker processes while an independent
worker process joins the same study; both log to an `mlflow server` on 127.0.0.1 and share one
PostgreSQL Optuna storage and one global trial budget.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flows.prepare import prepare_flow
from studies.storage import PARENT_RUN_ATTR, build_storage
from tests.flows.conftest import REPO, SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, load_study, study_runs
from tests.flows.services import start_mlflow_server, stop
from tests.support.commands import TUNEDAG
from tests.support.postgres import postgres_server
from tracking.store import client_for
from tracking.tags import TAG_TRIAL
from tunedag.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture
def postgres_url():
    with postgres_server() as server:  # pgserver, in a folder outside pytest's (tests/support/postgres.py says why)
        yield server.get_uri()


@pytest.fixture
def mlflow_server(tmp_path_factory):
    proc, url = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield url
    stop(proc)


def _cli(project: Path, command: str, overrides: dict) -> subprocess.Popen:
    args = [a for key, value in overrides.items() for a in ("--set", f"{key}={value}")]
    env = {**subprocess_env(), "PYTHONPATH": str(REPO)}  # the test estimator, for the flow and its Dask workers
    return subprocess.Popen(
        [*TUNEDAG, command, *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_dask_trials_and_a_second_worker_share_one_budget(project, postgres_url, mlflow_server):
    n_trials = 14
    # Trials of a known length (3 s), so the two drivers started together both get some.
    overrides = {
        **{k: v for k, v in SHRINK.items() if k not in ("search_space.n_estimators", "tune.executor")},
        "model.estimator": "tests.support.misbehaving.MisbehavingClassifier",
        "model.fixed": "{delay: 3.0}",
        "model.trusted_types": "[tests.support.misbehaving.MisbehavingClassifier]",
        "search_space": "{max_depth: {type: int, low: 1, high: 40}}",  # room for 14 configurations, none run twice
        "tune.n_trials": 2,
        "tune.storage": postgres_url,
        "tracking.uri": mlflow_server,
        "tune.runner.kind": "dask",
        "tune.sampler.constant_liar": "true",
    }
    cfg = load_config(project / "params.yaml", {k: _yaml(v) for k, v in {**overrides, "tune.n_trials": n_trials}.items()})
    prepare_flow(cfg)
    first = _cli(project, "tune", overrides)  # creates the study, the experiment and the pipeline run
    assert first.wait(300) == 0, first.stdout.read()[-3000:]
    assert _has_parent(build_storage(postgres_url))

    # Both join at once: the tune flow with its trials on a Dask LocalCluster, a worker with its own processes.
    main = _cli(project, "tune", {**overrides, "tune.n_trials": n_trials})
    worker = _cli(project, "worker", {**overrides, "tune.n_trials": n_trials, "tune.runner.kind": "local"})
    worker_out, main_out = worker.communicate(timeout=400)[0], main.communicate(timeout=400)[0]
    assert worker.returncode == 0, worker_out[-3000:]
    assert main.returncode == 0, main_out[-3000:]

    study = check_ledger(cfg, n_complete=n_trials)
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    runs = study_runs(cfg, study.study_name, "trial")
    trial_of_run = {r.info.run_id: int(r.data.tags[TAG_TRIAL]) for r in runs}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    assert [trial_of_run[t.user_attrs["mlflow_run_id"]] for t in complete] == [t.number for t in complete]  # no run told twice
    assert len({r.data.tags[TAG_TRIAL] for r in runs}) == len(runs) == len(numbers)
    owners = {t.user_attrs["tunedag.worker"] for t in study.get_trials(deepcopy=False)}
    assert len(owners) == 3, "the first run, the second tune flow and the worker all ran trials"
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
