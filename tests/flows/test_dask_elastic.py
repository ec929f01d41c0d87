"""Dask workers that join and leave a running study: the global budget holds and nothing is lost or repeated.

A Dask scheduler and one worker start on their own (the `dask` command, as on other hosts); the tune
flow sends its trials to that scheduler; a second worker joins once trials are done, then the first
is killed with SIGKILL while it may hold a trial. The study ends with exactly `tune.n_trials`
complete trials, one MLflow run per trial number, and trials that ran on both workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from flows.prepare import prepare_flow
from studies.configurations import DUPLICATE_OF
from studies.storage import build_storage
from tests.flows.conftest import REPO, SHRINK, subprocess_env
from tests.flows.ledger import check_ledger
from tests.support.commands import TUNEDAG
from tests.support.misbehaving import TRACE_ENV
from tunedag.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

DASK = str(Path(sys.executable).with_name("dask"))
N_TRIALS = 10


def _start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=cwd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _complete(storage, study_name: str | None) -> int:
    names = [s.study_name for s in storage.get_all_studies()]
    if not names:
        return 0
    study = optuna.load_study(study_name=study_name or names[0], storage=storage)
    return sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def _wait_for(condition, proc: subprocess.Popen, what: str, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"the tune flow ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_workers_joining_and_leaving_keep_the_budget_and_lose_nothing(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("dask")  # the cluster's own folders, outside the project
    env = {**subprocess_env(), "PYTHONPATH": str(REPO)}  # the test estimator, for the flow and the workers
    scheduler_file = outside / "scheduler.json"
    scheduler = _start(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        env,
        outside,
    )
    workers: dict[str, subprocess.Popen] = {}

    def worker(name: str) -> subprocess.Popen:
        args = [DASK, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-nanny", "--no-dashboard"]
        args += ["--name", name, "--local-directory", str(outside / name)]
        workers[name] = _start(args, {**env, TRACE_ENV: str(outside / f"{name}.fits")}, outside)
        return workers[name]

    tune = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        worker("a")
        sets = {
            **{k: v for k, v in SHRINK.items() if k not in ("search_space.n_estimators", "tune.executor")},
            "model.estimator": "tests.support.misbehaving.MisbehavingClassifier",
            "model.fixed": {"delay": 3.0},  # long enough for a worker to start and join under load
            "model.trusted_types": ["tests.support.misbehaving.MisbehavingClassifier"],
            "search_space": {"max_depth": {"type": "int", "low": 1, "high": 40}},
            "tune.n_trials": N_TRIALS,
            "tune.runner.kind": "dask",
            "tune.runner.address": address,
            "tune.sampler.constant_liar": True,
        }
        cfg = load_config(project / "params.yaml", sets)
        prepare_flow(cfg)
        storage = build_storage(cfg.tune.storage)
        argv = [a for key, value in sets.items() for a in ("--set", f"{key}={json.dumps(value)}")]
        tune = _start([*TUNEDAG, "tune", *argv], env, project)

        _wait_for(lambda: _complete(storage, None) >= 1, tune, "a complete trial")
        worker("b")  # joins the running study
        _wait_for(lambda: (outside / "b.fits").exists(), tune, "a trial on the joining worker")
        left_at = _complete(storage, None)
        _kill(workers["a"])  # leaves without notice, perhaps in the middle of a trial
        assert left_at < N_TRIALS - 2, "the first worker left with the study far from done"
        assert tune.wait(400) == 0
    finally:
        for proc in [tune, *workers.values(), scheduler]:
            if proc is not None:
                _kill(proc)

    study = check_ledger(cfg, n_complete=N_TRIALS)
    ran = [t for t in study.trials if DUPLICATE_OF not in t.user_attrs]  # repeats of held configurations are not run
    assert len(ran) <= N_TRIALS + 2, "at most the trials the killed worker held were lost and re-run"
    fits = {name: (outside / f"{name}.fits").read_text().split() for name in ("a", "b")}
    assert fits["a"] and fits["b"], "both workers ran trials"
