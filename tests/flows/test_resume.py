"""Killing the tuning process at any point loses and duplicates nothing: the next run finishes the study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from compat.optuna import study_storage
from flows.prepare import prepare_flow
from studies.storage import build_storage, open_study
from tasks.tracking import MODEL_ARTIFACT, TAG_TRIAL, local_artifact_dir
from tests.flows.conftest import SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, study_runs
from tunedag.config import load_config
from tunedag.data import file_md5
from tunedag.space import is_complete

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

N_TRIALS = 12


def _write_params(project: Path) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in {
        **SHRINK,
        "tune.n_trials": N_TRIALS,
        "tune.executor": "process",  # params.yaml's: the process group killed holds the pool's workers
        "search_space.n_estimators": {"type": "int", "low": 20, "high": 80},
    }.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value
    (project / "params.yaml").write_text(yaml.safe_dump(raw))


def _states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in optuna.load_study(study_name=study.study_name, storage=study_storage(study)).trials]


def _run_and_kill(project: Path, study: optuna.Study, after_complete: int, delay: float = 0.0) -> None:
    """Start the tune stage; SIGKILL its process group `delay` s after `after_complete` trials are done and one runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.tune"],
        cwd=project,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        states = _states(study)
        if states.count(TrialState.COMPLETE) >= after_complete and TrialState.RUNNING in states:
            break
        time.sleep(0.05)
    time.sleep(delay)
    assert proc.poll() is None, "the tune stage ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _check_runs(cfg, study: optuna.Study) -> None:
    """Every FINISHED trial run whole (params, metrics, a loadable model); interrupted trials' runs KILLED with why."""
    runs = study_runs(cfg, study.study_name, "trial")
    numbers = [int(r.data.tags[TAG_TRIAL]) for r in runs]
    assert len(numbers) == len(set(numbers)), "no trial number has two runs"
    assert not [r for r in runs if r.info.status == "RUNNING"]
    by_number = {int(r.data.tags[TAG_TRIAL]): r for r in runs}
    for t in study.trials:
        run = by_number[t.number]
        if run.info.status == "FINISHED" and t.state == TrialState.COMPLETE:
            assert run.data.params and run.data.metrics[f"val_{cfg.tune.metric}"] == t.values[0]
            assert mlflow.pyfunc.load_model(str(local_artifact_dir(run.info.artifact_uri) / MODEL_ARTIFACT)) is not None
        if t.state == TrialState.FAIL and str(t.user_attrs.get("error", "")).startswith("interrupted"):
            assert run.info.status == "KILLED" and run.data.tags["tunedag.error"].startswith("interrupted")
            assert run.data.params == {k: str(v) for k, v in t.params.items()}, "an interrupted run carries its parameters"


def test_kill_9_during_tuning_then_rerun_finishes_with_nothing_lost_or_duplicated(project):
    _write_params(project)
    cfg = load_config(project / "params.yaml")
    prepare_flow(cfg)
    study = open_study(cfg, file_md5(cfg.paths.prepared))

    # Three kills at different points: mid-ask, mid-fit, mid-MLflow write, between trials (the delays vary it).
    for after, delay in ((1, 0.0), (4, 0.2), (7, 0.05)):
        _run_and_kill(project, study, after, delay)
    done = subprocess.run(
        [sys.executable, "-m", "flows.tune"], cwd=project, capture_output=True, text=True, timeout=300, env=subprocess_env()
    )
    assert done.returncode == 0, done.stderr[-3000:]

    study = check_ledger(cfg, n_complete=N_TRIALS)
    _check_runs(cfg, study)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    requeued = {t.user_attrs.get("requeued_from"): t for t in study.trials if "requeued_from" in t.user_attrs}
    assert len(failed) >= 3
    # A trial killed while its parameters were being sampled has nothing to re-run; every other is re-queued.
    whole = [t for t in failed if is_complete(t.params, cfg.families)]
    assert whole
    for t in whole:
        assert requeued[t.number].params == t.params, "an interrupted trial is re-queued with its parameters"
    assert all(t.number not in requeued for t in failed if t not in whole)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_the_process_group_stops_within_seconds_and_the_next_run_resumes(project, signum):
    _write_params(project)
    cfg = load_config(project / "params.yaml")
    prepare_flow(cfg)
    study = open_study(cfg, file_md5(cfg.paths.prepared))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.tune"],
        cwd=project,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = _states(study)
        if states.count(TrialState.COMPLETE) >= 2 and TrialState.RUNNING in states:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signum)  # as a terminal's Ctrl-C does: every process of the group
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - sent < 15, err[-5000:]

    trials = optuna.load_study(study_name=study.study_name, storage=build_storage(cfg.tune.storage)).trials
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all(t.user_attrs["error"].startswith("interrupted") for t in interrupted), [
        t.user_attrs for t in interrupted
    ]
    runs = {int(r.data.tags[TAG_TRIAL]): r for r in study_runs(cfg, study.study_name, "trial")}
    assert all(
        runs[t.number].info.status == "KILLED" and runs[t.number].data.tags["tunedag.error"].startswith("interrupted")
        for t in interrupted
    ), [(runs[t.number].info.status, runs[t.number].data.tags) for t in interrupted]
    assert [r.info.status for r in study_runs(cfg, study.study_name, "pipeline")] == ["KILLED"]

    done = subprocess.run(
        [sys.executable, "-m", "flows.tune", "--set", f"tune.max_failed_trials={0}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]  # interrupted trials are no failures, even with none allowed
    study = check_ledger(cfg, n_complete=N_TRIALS)
    _check_runs(cfg, study)
    requeued = {t.user_attrs["requeued_from"]: t for t in study.trials if "requeued_from" in t.user_attrs}
    assert all(requeued[t.number].params == t.params for t in interrupted if is_complete(t.params, cfg.families))
