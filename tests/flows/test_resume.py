"""Killing the tuning process at any point loses and duplicates nothing: the next run finishes the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import mlflow
import optuna
import psutil
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from compat.optuna import study_storage
from flows.prepare import prepare_flow
from flows.train import train_flow
from flows.tune import run as run_tune
from modelio.mlflow_models import MODEL_ARTIFACT
from studies.configurations import DUPLICATE_OF
from studies.storage import WORKER_ATTR, build_storage, open_study
from tasks.training import DIED as TRAIN_DIED
from tasks.training import ROLE_FINAL
from tests.flows.conftest import SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, study_runs
from tracking.runs import local_artifact_dir
from tracking.store import client_for, sqlite_file
from tracking.tags import TAG_OWNER, TAG_TRIAL
from trials.recovery import DIED
from tunedag.config import load_config
from tunedag.data import file_md5
from tunedag.space import is_complete

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

N_TRIALS = 12
MADE, RAISED = 2, 2 + 8  # tune.n_trials of `make run`'s study, then raised by 8
TUNEDAG = Path(sys.executable).with_name("tunedag")  # the command dvc.yaml's stages run


def _write_params(project: Path, n_trials: int = N_TRIALS, **more) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in {
        **SHRINK,
        "tune.n_trials": n_trials,
        "tune.executor": "process",  # params.yaml's: the process group killed holds the pool's workers
        "search_space.n_estimators": {"type": "int", "low": 20, "high": 80},
        **more,
    }.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value
    (project / "params.yaml").write_text(yaml.safe_dump(raw))


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
            assert (
                run.data.params
                and run.data.metrics[f"{'cv' if cfg.data.cv_folds >= 2 else 'val'}_{cfg.tune.metric}"] == t.values[0]
            )
            assert mlflow.pyfunc.load_model(str(local_artifact_dir(run.info.artifact_uri) / MODEL_ARTIFACT)) is not None
        if t.state == TrialState.FAIL and str(t.user_attrs.get("error", "")).startswith("interrupted"):
            assert run.info.status == "KILLED" and run.data.tags["tunedag.error"].startswith("interrupted")
            assert run.data.params == {k: str(v) for k, v in t.params.items()}, "an interrupted run carries its parameters"


class Moments:
    """What the test reads of a stage's state while it runs: the study (read-only), the MLflow store, the model folders.

    Each `at_*` method names the moment it sees (a short description) or returns None; `_kill_at` asks it
    again with the process group frozen, so what it names is the state the SIGKILL met.
    """

    def __init__(self, cfg, study_name: str) -> None:
        self.cfg, self.study_name = cfg, study_name
        storage = JournalStorage(JournalFileBackend(str(cfg.tune.storage)))  # no lock, no repair: a reader only
        self.study = optuna.load_study(study_name=study_name, storage=storage)
        self.client = client_for(cfg.tracking.uri)
        self.done: set[str] = set()  # runs seen FINISHED or closed: their model folders are skipped
        self.trials_before = 0
        self.pipelines_before: set[str] = set()
        self.trial: int | None = None  # the trial the last moment named
        self.pid = 0  # the stage's process: only what it asked, opened or wrote counts
        self.folder: Path | None = None  # the model folder the model-write moment met
        self.store: list[tuple[int, int]] = []  # size and mtime of the MLflow store's files, when last looked at

    def arm(self) -> None:
        """Note what exists before a stage starts: its trials and pipeline runs are the new ones."""
        self.trials_before = len(self.study.get_trials(deepcopy=False))
        self.pipelines_before = {r.info.run_id for r in study_runs(self.cfg, self.study_name, "pipeline")}
        self.store = self._store_files()

    def _running(self) -> dict[int, optuna.trial.FrozenTrial]:
        """The RUNNING trials this stage's process asked (not those a killed one left RUNNING)."""
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return {t.number: t for t in running if t.user_attrs.get(WORKER_ATTR, "").split(":")[1:2] == [str(self.pid)]}

    def _trial_runs(self) -> dict[int, object]:
        return {int(r.data.tags[TAG_TRIAL]): r for r in study_runs(self.cfg, self.study_name, "trial")}

    @staticmethod
    def _model(run) -> Path:
        return local_artifact_dir(run.info.artifact_uri) / MODEL_ARTIFACT

    def _store_files(self) -> list[tuple[int, int]]:
        db = sqlite_file(self.cfg.tracking.uri)
        return [(p.stat().st_size, p.stat().st_mtime_ns) for p in (db, db.with_name(f"{db.name}-wal")) if p.exists()]

    def mlflow_wrote(self) -> bool:
        """Whether the MLflow store's files changed since `arm` or the last ask: a stat, cheap enough to poll every millisecond."""
        wrote, self.store = (now := self._store_files()) != self.store, now
        return wrote

    def at_start_up(self) -> str | None:
        """The stage has opened its pipeline run, and asked no trial yet."""
        new = [r for r in study_runs(self.cfg, self.study_name, "pipeline") if r.info.run_id not in self.pipelines_before]
        if new and new[0].info.status == "RUNNING" and len(self.study.get_trials(deepcopy=False)) == self.trials_before:
            return f"start-up: pipeline run {new[0].info.run_id} RUNNING, no trial asked yet"
        return None

    def at_mid_trial(self) -> str | None:
        """A trial has run for 0.3 s or more, its MLflow run open, its model not begun."""
        runs, now = self._trial_runs(), time.time()
        for number, t in self._running().items():
            run = runs.get(number)
            if (
                run
                and run.info.status == "RUNNING"
                and not self._model(run).exists()
                and now - t.datetime_start.timestamp() > 0.3
            ):
                self.trial = number
                return f"mid-trial: trial {number} RUNNING for {now - t.datetime_start.timestamp():.1f} s, no model folder yet"
        return None

    def _model_folders(self, whole: bool) -> list[Path]:
        """The trial model folders of runs not yet seen done: with `whole`, those MLflow has finished writing, else begun ones."""
        root = Path(self.cfg.tracking.artifact_root)
        folders = [p for p in root.glob(f"*/*/artifacts/{MODEL_ARTIFACT}") if p.parent.parent.name not in self.done]
        return [p for p in folders if (p / "python_env.yaml").is_file() == whole]  # MLflow's saver writes python_env.yaml last

    def _open_trial_run(self, folder: Path) -> tuple[int, object] | None:
        """The RUNNING trial and its RUNNING run that own a model folder; None (and the run noted done) otherwise."""
        run = self.client.get_run(folder.parent.parent.name)
        number = int(run.data.tags.get(TAG_TRIAL, -1))
        if run.info.status != "RUNNING" or number not in self._running():
            self.done.add(run.info.run_id)
            return None
        return number, run

    def at_model_write(self) -> str | None:
        """A RUNNING trial's model folder is being written: its model data begun, MLflow's last file not yet there."""
        for folder in self._model_folders(whole=False):
            if (found := self._open_trial_run(folder)) and any(folder.iterdir()):
                self.trial, self.folder = found[0], folder
                return f"model write: trial {found[0]}'s model folder holds only {sorted(p.name for p in folder.iterdir())}"
        return None

    def at_mlflow_write(self) -> str | None:
        """A RUNNING trial's model is whole, its MLflow run not yet FINISHED: the trial's run is being written."""
        for folder in self._model_folders(whole=True):
            if found := self._open_trial_run(folder):
                number, run = found
                self.trial = number
                return f"MLflow write: trial {number}'s model whole, its run RUNNING with metrics {sorted(run.data.metrics)}"
        return None

    def at_refit(self) -> str | None:
        """The train stage's own final run is RUNNING with nothing uploaded: the refit (fit, then the model folders) is on."""
        for run in study_runs(self.cfg, self.study_name, ROLE_FINAL):
            mine = run.data.tags.get(TAG_OWNER, "").split(":")[1:2] == [str(self.pid)]
            if mine and run.info.status == "RUNNING" and not self.client.list_artifacts(run.info.run_id):
                staged = sorted(p.name for p in Path(self.cfg.paths.model_dir).parent.glob(".*.tmp"))
                return f"final refit: final run {run.info.run_id} RUNNING, nothing uploaded, staging folders {staged}"
        return None


def _group_stopped(pgid: int) -> bool:
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]
    return all(p.status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE) for p in group if p.is_running())


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _start(project: Path, stage: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(TUNEDAG), stage],
        cwd=project,
        start_new_session=True,  # its own process group, as a terminal gives `make run`
        stdout=subprocess.DEVNULL,
        stderr=tempfile.TemporaryFile(),  # a pipe nobody reads would fill and stall the stage
        env=subprocess_env(),
    )


def _kill_at(proc: subprocess.Popen, moment, timeout: float = 120, wrote=None) -> str:
    """Poll `moment` until it names its state, freeze the process group (SIGSTOP), ask it again and SIGKILL the group there.

    The state seen with the group frozen is the state the kill met. A state gone by then: SIGCONT, poll on.
    With `wrote` (a stat of the store, polled every millisecond), the group is frozen after each write and only then
    asked: a moment shorter than one ask (start-up, on a busy machine) cannot pass between two asks.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the stage ended before the moment came (exit {proc.returncode})"
        if wrote is not None and not wrote():
            time.sleep(0.001)
            continue
        if wrote is not None or moment():
            os.killpg(proc.pid, signal.SIGSTOP)
            frozen = time.monotonic() + 5
            while not _group_stopped(proc.pid) and time.monotonic() < frozen:
                time.sleep(0.002)
            if seen := moment():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return seen
            os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"the moment {moment.__name__} never came within {timeout} s")


def _version_folder(client, version) -> Path:
    """The folder on disk holding a registered version's files (its source, a run's artifact)."""
    run_id, path = version.source.removeprefix("runs:/").split("/", 1)
    return local_artifact_dir(client.get_run(run_id).info.artifact_uri) / path


def _version_files(client, name: str) -> dict[str, dict[str, str]]:
    """Every registered version of `name` and the md5 of each file in its folder."""
    folders = {str(v.version): _version_folder(client, v) for v in client.search_model_versions(f"name = '{name}'")}
    return {v: {str(f.relative_to(d)): file_md5(f) for f in sorted(d.rglob("*")) if f.is_file()} for v, d in folders.items()}


def test_kill_9_at_five_moments_then_rerun_loses_and_duplicates_nothing(project):
    """`make run`; raise tune.n_trials by 8; kill -9 the stage's process group at start-up, mid-trial, while a model is
    written, while its MLflow run is written, and during the final refit, running the stage again after each."""
    _write_params(project, MADE, **{"search_space.n_estimators": {"type": "int", "low": 60, "high": 150}})  # a model write lasts
    cfg = load_config(project / "params.yaml")
    prepare_flow(cfg)  # `make run`'s stages, in this process (their commands' start-up is not what is tested here)
    run_tune(cfg)
    train_flow(cfg)
    client, name = client_for(cfg.tracking.uri), cfg.final.registered_model
    registered = _version_files(client, name)
    assert list(registered) == ["1"]
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["tune"]["n_trials"] = RAISED
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(project / "params.yaml")
    watch = Moments(cfg, json.loads(Path(cfg.paths.tune_summary).read_text())["study_name"])

    seen = {}
    for moment in (watch.at_start_up, watch.at_mlflow_write, watch.at_model_write, watch.at_mid_trial):
        watch.arm()
        proc = _start(project, "tune")
        watch.pid = proc.pid
        wrote = watch.mlflow_wrote if moment == watch.at_start_up else None
        seen[moment.__name__] = (_kill_at(proc, moment, wrote=wrote), watch.trial)
    done = subprocess.run([str(TUNEDAG), "tune"], cwd=project, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]

    study = check_ledger(cfg, n_complete=RAISED)
    _check_runs(cfg, study)
    runs = {int(r.data.tags[TAG_TRIAL]): r for r in study_runs(cfg, study.study_name, "trial")}
    requeued = {t.user_attrs.get("requeued_from"): t for t in study.trials if "requeued_from" in t.user_attrs}
    for key in ("at_mlflow_write", "at_model_write", "at_mid_trial"):  # the trial each kill met: failed honestly, re-run
        number = seen[key][1]
        t, run = study.trials[number], runs[number]
        assert t.state == TrialState.FAIL and t.user_attrs["error"] == DIED, (seen[key], t.state, t.user_attrs)
        assert run.info.status == "KILLED" and run.data.tags["tunedag.error"].startswith(DIED), (seen[key], run.data.tags)
        assert run.data.params == {k: str(v) for k, v in t.params.items()}, "an interrupted run carries its parameters"
        while t.state != TrialState.COMPLETE:  # re-queued until a run finished it (a later kill may have met the re-run too)
            t = requeued[t.number]
            assert t.params == study.trials[number].params, "an interrupted trial is re-queued with its parameters"
    assert not (watch.folder / "python_env.yaml").exists(), "the model-write kill met a model half written"
    pipelines = study_runs(cfg, study.study_name, "pipeline")
    statuses = sorted(r.info.status for r in pipelines)
    assert statuses == ["FINISHED"] * 2 + ["KILLED"] * 4, f"each killed stage's pipeline run closed: {statuses}"

    watch.pid = (proc := _start(project, "train")).pid
    seen["at_refit"] = (_kill_at(proc, watch.at_refit), None)
    done = subprocess.run([str(TUNEDAG), "train"], cwd=project, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    finals = sorted(study_runs(cfg, study.study_name, ROLE_FINAL), key=lambda r: r.info.start_time)
    assert [r.info.status for r in finals] == ["FINISHED", "KILLED", "FINISHED"], seen["at_refit"]
    assert finals[1].data.tags["tunedag.error"] == TRAIN_DIED and not client.list_artifacts(finals[1].info.run_id)
    after = _version_files(client, name)
    assert sorted(after) == ["1", "2"] and after["1"] == registered["1"], "a registered version's files never change"
    assert after["2"] and mlflow.pyfunc.load_model(str(_version_folder(client, client.get_model_version(name, "2"))))
    assert mlflow.pyfunc.load_model(str(cfg.paths.model_dir)) is not None
    print("\n".join(what for what, _ in seen.values()))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_the_process_group_stops_within_seconds_and_the_next_run_resumes(project, signum):
    _write_params(  # trials of a known length, so that the signal lands in the middle of one
        project,
        **{
            "model.estimator": "tests.support.misbehaving.MisbehavingClassifier",
            "model.fixed": {"delay": 2.0},
            "model.trusted_types": ["tests.support.misbehaving.MisbehavingClassifier"],
            "search_space": {"max_depth": {"type": "int", "low": 1, "high": 40}},
        },
    )
    cfg = load_config(project / "params.yaml")
    prepare_flow(cfg)
    study = open_study(cfg, file_md5(cfg.paths.prepared))
    proc = subprocess.Popen(
        [str(TUNEDAG), "tune"],
        cwd=project,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        trials = optuna.load_study(study_name=study.study_name, storage=study_storage(study)).trials
        fresh = [
            t for t in trials if t.state == TrialState.RUNNING and t.datetime_start > datetime.now() - timedelta(seconds=0.5)
        ]
        if sum(t.state == TrialState.COMPLETE for t in trials) >= 2 and fresh:
            break  # a trial started under 0.5 s ago: it is still running when the signal lands
        time.sleep(0.05)
    os.killpg(proc.pid, signum)  # as a terminal's Ctrl-C does: every process of the group
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - sent < 15, err[-5000:]

    trials = optuna.load_study(study_name=study.study_name, storage=build_storage(cfg.tune.storage)).trials
    interrupted = [t for t in trials if t.state == TrialState.FAIL and DUPLICATE_OF not in t.user_attrs]  # repeats: not run
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
        [str(TUNEDAG), "tune", "--set", f"tune.max_failed_trials={0}"],
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
