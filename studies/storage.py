"""Optuna study set-up: storages, the study identity, and recovery of orphans."""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import socket
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import psutil
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from compat.optuna import journal_lock, journal_path, rdb_storage, study_storage
from tunedag.config import Config
from tunedag.errors import TunedagError, redact
from tunedag.problem import STUDY_ATTR as PROBLEM_ATTR
from tunedag.problem import read_problem
from tunedag.samplers import build_pruner, build_sampler, continuation_seed
from tunedag.space import grid_size, is_complete

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def grid_points_left(study: optuna.Study, space: dict) -> int:
    """Grid points not yet started (running, finished or failed trials all count as started)."""
    started = {t.system_attrs.get("grid_id") for t in study.get_trials(deepcopy=False)} - {None}
    return grid_size(space) - len(started)


def build_storage(url: str, sync: bool = True) -> BaseStorage:
    """An RDB URL (sqlite://, postgresql://) or, for a plain path, Optuna's journal file storage.

    `sync` (`tune.journal_sync`) fsyncs every journal write, as Optuna does; without it each write
    still reaches the OS before the call returns, so a killed process loses nothing (see `UnsyncedJournalFile`).
    """
    if "://" in url:
        try:
            return RDBStorage(url)
        except Exception as exc:  # driver missing, server down, bad credentials: one paragraph, no password
            first = redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TunedagError(
                f"The Optuna storage {redact(url)} (tune.storage) cannot be opened: {first}. "
                "Check that the database server runs and the URL is right, or use a file path for "
                "the embedded journal storage (optuna/study.journal)."
            ) from None
    path = Path(url).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = (JournalFileBackend if sync else UnsyncedJournalFile)(str(path))
    _cut_torn_tail(backend)
    return JournalStorage(backend)


def _cut_torn_tail(backend: JournalFileBackend) -> None:
    """Drop a last line without its newline (a write cut short by an OS crash), which would make every later append unreadable."""
    path = journal_path(backend)
    if _ends_whole(path):
        return
    with journal_lock(backend), open(path, "rb+") as f:
        end = pos = f.seek(0, os.SEEK_END)
        while pos > 0:
            step = min(pos, 1 << 16)
            f.seek(pos - step)
            chunk = f.read(step)
            if pos == end and chunk.endswith(b"\n"):
                return  # mended meanwhile by another process
            if (cut := chunk.rfind(b"\n")) >= 0:
                f.truncate(pos - step + cut + 1)
                return
            pos -= step
        f.truncate(0)


def _ends_whole(path: Path) -> bool:
    """True for a missing or empty journal or one whose last byte ends a line."""
    if not path.is_file() or path.stat().st_size == 0:
        return True
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class UnsyncedJournalFile(JournalFileBackend):
    """Optuna's journal file, appended under its lock but without the fsync after each write.

    The fsync is what a trial's bookkeeping waits for most here: on ext4 each one also flushes
    the model files and store pages written since the last, 1-2 ms each under a study's writes,
    six a trial. Without it a write is in the OS's cache when the call returns: other processes
    read it at once and a killed process loses nothing; an OS crash or power cut can lose the
    last writes (a line cut short is dropped when the study next opens). That is the durability Prefect's server
    gives its own SQLite store (synchronous=NORMAL).
    """

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        lines = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        with journal_lock(self), open(journal_path(self), "ab") as f:
            f.write(lines.encode("utf-8"))


def study_key(cfg: Config, data_version: str) -> str:
    """A short hash of what makes trial values comparable: data, model, space, metric, validation."""
    ident = {
        "data_version": data_version,
        "model": cfg.model.model_dump(mode="json"),
        "space": {k: v.model_dump(mode="json") for k, v in cfg.search_space.items()},
        "metric": cfg.tune.metric,
        "objectives": cfg.tune.objectives,
        "cv_folds": cfg.data.cv_folds,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


def close_study(study: optuna.Study) -> None:
    """Close the storage's pooled database connections (a no-op for the journal file)."""
    if (backend := rdb_storage(study)) is not None:
        backend.engine.dispose()


def study_name(cfg: Config, data_version: str) -> str:
    return f"{cfg.tune.study_name}-{study_key(cfg, data_version)}"


def join_study(cfg: Config, data_version: str) -> optuna.Study:
    """Load the study a tune run created for this config and data version; never create one."""
    name = study_name(cfg, data_version)
    try:
        study = optuna.load_study(
            study_name=name,
            storage=build_storage(cfg.tune.storage, cfg.tune.journal_sync),
            sampler=build_sampler(cfg),
            pruner=build_pruner(cfg),
        )
        continue_sequence(cfg, study, existed=True, alongside=True)
        return study
    except KeyError:
        raise TunedagError(
            f"Study {name} does not exist in {redact(cfg.tune.storage)} (tune.storage); start it with "
            "`tunedag tune` (same params.yaml and data) before starting workers."
        ) from None


def open_study(cfg: Config, data_version: str) -> optuna.Study:
    """Create or load the study for this config and data version (same inputs, same study)."""
    name = study_name(cfg, data_version)
    study = optuna.create_study(
        study_name=name,
        storage=build_storage(cfg.tune.storage, cfg.tune.journal_sync),
        sampler=build_sampler(cfg),
        pruner=build_pruner(cfg),
        directions=cfg.tune.directions,
        load_if_exists=True,
    )
    continue_sequence(cfg, study, existed="data_version" in study.user_attrs)  # read before the line below marks it started
    study.set_user_attr("data_version", data_version)
    study.set_user_attr("metric", cfg.tune.metric)
    label_study(study, cfg)
    return study


def continue_sequence(cfg: Config, study: optuna.Study, existed: bool, alongside: bool = False) -> None:
    """Give `study` a sampler seeded from what it holds (`continuation_seed`), so that no driver replays another's draws.

    The first driver of an empty study keeps `seed` (raw Optuna's sequence); one that extends or
    resumes it seeds from the trial count; one that may ask beside other drivers (`alongside`, a
    study that `existed` but is still empty, or trials running in another live process) adds its own id.
    """
    trials = study.get_trials(deepcopy=False)
    me = worker_id()
    others = any(t.state == TrialState.RUNNING and t.user_attrs.get(WORKER_ATTR) != me and owner_alive(t) for t in trials)
    driver = me if alongside or others or (existed and not trials) else None
    study.sampler = build_sampler(cfg, seed=continuation_seed(cfg.seed, len(trials), driver))


def label_study(study: optuna.Study, cfg: Config) -> None:
    """Name the study's objectives (Optuna's dashboard shows `roc_auc`, not "Objective 0") and record its problem.

    The problem is read from `paths.prepared` (the data this study's version names); without it
    the study is left without one, and no later study is warm-started from it.
    """
    names = [cfg.tune.metric, *cfg.tune.objectives]
    if study.metric_names != names:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and stable in use; the warning would reach the terminal
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    problem = read_problem(cfg.paths.prepared)
    if problem is not None and PROBLEM_ATTR not in study.user_attrs:
        study.set_user_attr(PROBLEM_ATTR, problem.id)


PARENT_RUN_ATTR = "tunedag.parent_run_id"  # the MLflow pipeline run the study's trials nest under
WORKER_ATTR = "tunedag.worker"  # host:pid:start time of the process that asked the trial
HEARTBEAT_ATTR = "tunedag.heartbeat"  # unix time, refreshed while the trial runs
HEARTBEAT_S = 20.0
STALE_S = 120.0  # a trial of another host with no heartbeat for this long is an orphan


def worker_id() -> str:
    """This process, as recorded on the trials it runs: host, pid and start time (pids are reused)."""
    pid = os.getpid()  # a forked child has its own, so the cache is keyed on it
    if pid not in _WORKER_IDS:  # psutil reads /proc on every call: milliseconds a trial under load
        _WORKER_IDS[pid] = f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.0f}"
    return _WORKER_IDS[pid]


_WORKER_IDS: dict[int, str] = {}


def claim(trial: optuna.Trial) -> None:
    """Record this process as the trial's owner (one storage write: the trial's start is its first heartbeat)."""
    trial.set_user_attr(WORKER_ATTR, worker_id())


def beat(study: optuna.Study, trial_ids: list[int]) -> None:
    """Refresh the heartbeat of running trials (their owner is alive)."""
    now = time.time()
    for trial_id in trial_ids:
        try:
            study_storage(study).set_trial_user_attr(trial_id, HEARTBEAT_ATTR, now)
        except (RuntimeError, ValueError):  # finished meanwhile: Optuna refuses to touch it
            pass


def owner_alive(trial: optuna.trial.FrozenTrial, now: float | None = None) -> bool:
    """Whether the process that asked `trial` still runs it.

    On this host the owner's pid and start time tell at once; for another host (a shared
    PostgreSQL or journal file) the heartbeat must be younger than STALE_S.
    """
    now = now or time.time()
    owner = trial.user_attrs.get(WORKER_ATTR)
    if owner is None:  # killed between ask and claim, or a pre-ownership trial
        started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        return now - started < 10.0
    if owner.rsplit(":", 2)[0] != socket.gethostname():
        started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        return now - float(trial.user_attrs.get(HEARTBEAT_ATTR, started)) < STALE_S
    return process_alive(owner)


def process_alive(owner: str | None) -> bool:
    """Whether the process `owner` (a `worker_id()` value) still runs; None is not, another host's is taken as alive."""
    if owner is None:
        return False
    host, pid, started = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    try:
        return f"{psutil.Process(int(pid)).create_time():.0f}" == started
    except psutil.NoSuchProcess:
        return False


def recover_orphans(study: optuna.Study, families: dict) -> list[optuna.trial.FrozenTrial]:
    """Fail trials left RUNNING by a dead process and queue their parameters again.

    Ask/tell gets no heartbeat from Optuna, so each driver records its own owner and heartbeat
    on its trials (see `claim`); trials of a live driver, here or on another host, are left alone.
    A trial killed while it was being asked, before all its parameters were set, is failed
    and not re-queued: nothing of it ran.
    """
    orphans = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if not owner_alive(t)]
    for trial in orphans:
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # another worker recovered it first
            continue
        if is_complete(trial.params, families):
            study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number}, skip_if_exists=False)
    return orphans


def budget_left(study: optuna.Study, n_trials: int, number: int | None = None) -> int:
    """Trials still to start for `n_trials` finished ones, counting every worker's running trials.

    With `number`, whether that just-asked trial fits in the budget: it is in when fewer than
    `n_trials` finished or running trials come before it (workers that asked at once agree).
    """
    return tally(study).budget_left(n_trials, number)


def count_finished(study: optuna.Study) -> int:
    return tally(study).finished


@dataclass(frozen=True)
class Tally:
    """The study's trials counted in one pass, as every worker sees them in the shared storage.

    What the trial loop asks several times per trial (budget, finished count, best so far) comes
    from one `tally` instead of one scan of the storage per question: the scan is linear in the
    study's length, so thousands of trials made it the loop's largest cost.
    """

    started: tuple[int, ...]  # numbers of the finished (COMPLETE, PRUNED) and RUNNING trials, any worker's
    finished: int
    complete: int
    best: tuple[int, float] | None  # (number, first objective value) of the best complete trial

    def budget_left(self, n_trials: int, number: int | None = None) -> int:
        """As `budget_left(study, n_trials, number)`, from this tally."""
        if number is None:
            return n_trials - len(self.started)
        return n_trials - bisect.bisect_right(self.started, number)  # `started` is in number order


def tally(study: optuna.Study) -> Tally:
    """Count the study's trials (see `Tally`), scanning only those after its leading run of finished ones.

    A finished trial never changes again (Optuna refuses it), so the counts of the study's first
    trials, up to the first one still running or waiting, are kept from one call to the next: at
    5,000 trials one full scan took 2.4 ms, and the loop tallies three times a trial.
    """
    trials = study.get_trials(deepcopy=False)  # in number order, appended to, never removed
    counts = _PREFIXES.get(study)
    if counts is None or len(trials) < counts.length:
        counts = _PREFIXES[study] = _Counts(study.directions[0] == optuna.study.StudyDirection.MAXIMIZE)
    while counts.length < len(trials) and trials[counts.length].state.is_finished():
        counts.add(trials[counts.length])
        counts.length += 1
    tail = _Counts(counts.maximize, list(counts.started), counts.finished, counts.complete, counts.best)
    for t in trials[counts.length :]:
        tail.add(t)
    return Tally(tuple(tail.started), tail.finished, tail.complete, tail.best)


@dataclass
class _Counts:
    """Running counts for `tally`; `length` is how many of the study's first trials they cover (all finished)."""

    maximize: bool
    started: list[int] = field(default_factory=list)
    finished: int = 0
    complete: int = 0
    best: tuple[int, float] | None = None
    length: int = 0

    def add(self, t: optuna.trial.FrozenTrial) -> None:
        state = t.state
        if state == TrialState.COMPLETE:
            self.finished += 1
            self.complete += 1
            value = t.values[0]
            if self.best is None or (value > self.best[1] if self.maximize else value < self.best[1]):
                self.best = (t.number, value)
        elif state == TrialState.PRUNED:
            self.finished += 1
        elif state != TrialState.RUNNING:
            return
        self.started.append(t.number)


_PREFIXES: weakref.WeakKeyDictionary[optuna.Study, _Counts] = weakref.WeakKeyDictionary()
