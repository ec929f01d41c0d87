"""Tuning tasks: open the study and its MLflow parent run, run one trial, reconcile after a crash."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import optuna
import psutil
from optuna.trial import TrialState
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from tasks.provenance import git_commit, prefect_flow_run_id
from tasks.tracking import (
    MODEL_ARTIFACT,
    TAG_DATA_VERSION,
    TAG_FLOW_RUN,
    TAG_GIT,
    TAG_ROLE,
    TAG_STATE,
    TAG_STUDY,
    TAG_TRIAL,
    Tracker,
    absolute_uri,
    client_for,
    experiment_artifact_dir,
    find_runs,
    local_artifact_dir,
    log_values,
    start_run,
    start_trial_run,
)
from tasks.pool import executor_for
from tasks.trial_worker import JobResult, TrialJob, discard, run_job
from tunedag.config import Config
from tunedag.executor import TrialLimitExceeded
from tunedag.study import recover_orphans


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs, small enough to hand to a worker: references, not data."""

    cfg: Config
    data_path: Path
    data_version: str
    experiment_id: str
    parent_run_id: str
    study_name: str
    tags: dict[str, str]
    executor: str  # "process" or "thread" (inside a Dask worker, which is its own process)
    record_async: bool = False  # finished trials written to MLflow by this process's recorder thread (see Recorder)


@dataclass(frozen=True)
class TrialResult:
    """A trial's outcome as the flow tells it to Optuna."""

    number: int
    state: str  # "COMPLETE", "PRUNED" or "FAIL"
    values: list[float] | None
    error: str | None
    run_id: str
    seconds: float

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None


def lineage_tags(study_name: str, data_version: str) -> dict[str, str]:
    """Tags linking a run to its study, data version, code version and Prefect flow run."""
    return {TAG_STUDY: study_name, TAG_DATA_VERSION: data_version, TAG_GIT: git_commit(), TAG_FLOW_RUN: prefect_flow_run_id()}


class LaunchedTrial:
    """A trial handed to its worker: what its task and the trial loop wait on (`launch_trial` makes one).

    The worker's answer is read by both; the trial's time is taken once, by whichever reads it
    first. A held trial's task waits for `release` before it records the trial, so that its
    work does not compete with the loop's tell and next launch for this process's GIL.
    """

    def __init__(self, job: TrialJob, run: Future, staging: Path | None, early: Future, final: Future, started: float,
                 held: bool):
        self.job, self.run, self.staging, self.early, self.final = job, run, staging, early, final
        self._started, self._seconds, self._lock, self._released = started, None, threading.Lock(), threading.Event()
        if not held:
            self._released.set()

    def answer(self) -> JobResult:
        """The worker's score (its model may still be being written); waits for it."""
        return _job_result(self.early)

    def seconds(self) -> float:
        """From the launch to the answer, as first read once the answer is in."""
        self.early.exception()  # waits for the answer
        with self._lock:
            if self._seconds is None:
                self._seconds = time.perf_counter() - self._started
            return self._seconds

    def told(self, run_id: str | None = None) -> TrialResult:
        """The trial's outcome as the loop tells it to Optuna: once answered, with its MLflow run's id (or `run_id`)."""
        result = self.answer()
        values = result.values if result.state != "FAIL" else None
        run_id = self.run.result()[0] if run_id is None else run_id  # created while the trial ran
        return TrialResult(self.job.number, result.state, values, result.error, run_id, self.seconds())

    def release(self) -> None:
        """Let the trial's task record it (the loop has told it and launched what comes next)."""
        self._released.set()

    def wait_released(self) -> None:
        self._released.wait()


def launch_trial(ctx: TrialContext, job: TrialJob, held: bool = False) -> LaunchedTrial:
    """Hand the trial to the executor now; its MLflow run is created meanwhile (by the recorder), or first.

    With `ctx.record_async` the run is created by the recorder thread (with the trial's start
    time) while the job runs, and the model goes to a staging folder beside the runs, moved into
    the run's folder once written; else the run is created first and the model written straight
    into its folder. `held`: the task waits for `LaunchedTrial.release` before it records.
    """
    started, start_ms, logger = time.perf_counter(), int(time.time() * 1000), _logger()
    executor = executor_for(ctx.cfg, ctx.executor)
    if ctx.record_async:
        staging = _staging_dir(ctx)
        # A worker process gets its job before the recorder competes for the GIL; a job run in this
        # thread has its run created meanwhile.
        run = None if ctx.executor == "process" else recorder().put(_create_run, ctx, job.number, start_ms, logger)
        early, final = executor.start(run_job, replace(job, model_dir=str(staging / MODEL_ARTIFACT)) if staging else job)
        run = run or recorder().put(_create_run, ctx, job.number, start_ms, logger)
    else:
        staging, run = None, Future()
        run.set_result(_create_run(ctx, job.number, None, logger))
        folder = run.result()[1]
        early, final = executor.start(run_job, replace(job, model_dir=str(folder / MODEL_ARTIFACT)) if folder else job)
    return LaunchedTrial(job, run, staging, early, final, started, held)


@task(cache_policy=NO_CACHE, task_run_name="trial-{job.number}")
def run_trial(ctx: TrialContext, job: TrialJob, launched: LaunchedTrial | None = None) -> TrialResult:
    """Evaluate one configuration on the trial executor and record it as a child MLflow run.

    A failing, timed-out or crashed trial is recorded, never raised. When the tracking store
    fails, the result still goes back to Optuna; the next run fills the run in. On the process
    executor the task returns as soon as the worker has the score; the worker writes the model
    files meanwhile, into the run's artifact folder when the store is on this disk (no copy).
    `launched`: the trial loop has handed the trial to its worker already (`launch_trial`) and
    tells its answer without waiting for this task to end; the task records it once released.

    With `ctx.record_async` every MLflow write is made by the process's recorder thread, in order:
    the run is created while the trial runs, and written in full once the model files are there,
    while the next trial runs. A trial told to Optuna whose run is not finished yet (the process
    was killed meanwhile) is filled in by `reconcile_trials` on the next run, and `drain_recorder`
    waits for every write before the flow ends.
    """
    launched, logger = launched or launch_trial(ctx, job), _logger()
    launched.wait_released()
    result, seconds = launched.answer(), launched.seconds()
    if ctx.record_async:
        recorder().put(_record_final, ctx, launched.run, launched.staging, job, result, launched.final, seconds, logger)
        return launched.told()
    recorded = _record_final(ctx, launched.run, None, job, result, launched.final, seconds, logger)
    return launched.told(None if recorded else "")


def _logger() -> Any:
    """The task run's logger, or tunedag's when called outside Prefect (`run_trial.fn`)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("tunedag")


def _create_run(ctx: TrialContext, number: int, start_time: int | None, logger: Any) -> tuple[str, Path | None]:
    """Create the trial's run; return its id ("" when the store failed) and its local artifact folder (or None)."""
    tags = {**ctx.tags, TAG_TRIAL: str(number), TAG_ROLE: "trial"}
    tracker = Tracker(client_for(ctx.cfg.tracking.uri), ctx.experiment_id)
    try:
        run = start_trial_run(tracker, f"trial-{number}", tags, ctx.parent_run_id, start_time)
    except Exception as exc:
        logger.warning("trial %d: no MLflow run (%s); it is filled in on the next run", number, exc)
        return "", None
    return run.info.run_id, local_artifact_dir(run.info.artifact_uri)


def _start_trial_run(ctx: TrialContext, number: int) -> tuple[str, str | None]:
    """Create the trial's run now; return its id and, for a local artifact store, the folder its model goes to."""
    run_id, folder = _create_run(ctx, number, None, _logger())
    return run_id, str(folder / MODEL_ARTIFACT) if folder else None


STAGING = ".staging"  # in the experiment's artifact folder: models of trials whose run is not created yet


def _staging_dir(ctx: TrialContext) -> Path | None:
    """A new path for one trial's model files beside the experiment's runs (the save creates it), or None for a remote store."""
    mine = _process_staging(absolute_uri(ctx.cfg.tracking.uri), ctx.experiment_id, os.getpid())
    return mine / uuid.uuid4().hex if mine else None


@lru_cache(maxsize=8)
def _process_staging(uri: str, experiment_id: str, pid: int) -> Path | None:
    """This process's staging folder in the experiment's local artifact folder, created once."""
    root = experiment_artifact_dir(uri, experiment_id)
    if root is None:
        return None
    mine = root / STAGING / f"{socket.gethostname()}-{pid}"
    mine.mkdir(parents=True, exist_ok=True)
    return mine


def clear_staging(tracker: Tracker, uri: str) -> None:
    """Delete staging folders left by processes of this host that are gone (killed mid-trial)."""
    root = experiment_artifact_dir(absolute_uri(uri), tracker.experiment_id)
    host = socket.gethostname()
    for folder in (root / STAGING).glob(f"{host}-*") if root else []:
        pid = int(folder.name.rsplit("-", 1)[1])
        if not psutil.pid_exists(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _job_result(done: Future) -> JobResult:
    try:
        return done.result()
    except TrialLimitExceeded as exc:
        return JobResult("FAIL", error=f"TrialLimitExceeded: {exc}")


def _record_final(ctx: TrialContext, run: Future, staging: Path | None, job: TrialJob, scored: JobResult, final: Future,
                  seconds: float, logger: Any) -> bool:
    """Once the job has returned (its model files written), write the trial's run; see `_record_or_warn`.

    A model written to `staging` is moved into the run's artifact folder first (or deleted when
    the run could not be created).
    """
    result = scored
    if scored.model_pending:
        done = _job_result(final)
        result = done if done.state == "COMPLETE" else replace(scored, model_pending=False, model_error=done.error)
    run_id, folder = run.result()
    if staging is not None:
        if run_id and folder and result.model_dir:
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(result.model_dir, folder / MODEL_ARTIFACT)
            result = replace(result, model_dir=str(folder / MODEL_ARTIFACT))
        shutil.rmtree(staging, ignore_errors=True)
    return _record_or_warn(ctx, run_id, job, result, seconds, logger)


def _record_or_warn(ctx: TrialContext, run_id: str, job: TrialJob, result: JobResult, seconds: float, logger: Any) -> bool:
    """Write the finished trial to its run; on a tracking failure warn (the next run fills it in). Frees the model folder."""
    try:
        if run_id:
            _record(ctx, run_id, job, result, seconds)
        return True
    except Exception as exc:  # the store went away mid-study: Optuna keeps the trial, reconcile fills MLflow in
        logger.warning("trial %d: MLflow recording failed (%s); it is filled in on the next run", job.number, exc)
        return False
    finally:
        discard(result)


def _record(ctx: TrialContext, run_id: str, job: TrialJob, result: JobResult, seconds: float) -> None:
    client, metric = client_for(ctx.cfg.tracking.uri), ctx.cfg.tune.metric
    if result.state == "COMPLETE":
        if result.model_dir and not result.in_place:
            client.log_artifacts(run_id, result.model_dir, MODEL_ARTIFACT)
        metrics = {**{f"val_{k}": v for k, v in result.metrics.items()}, "trial_seconds": seconds}
        tags = {TAG_STATE: "COMPLETE", "tunedag.objective": metric}
        if result.model_error:  # scored and told, but its model could not be saved
            tags["tunedag.model_error"] = result.model_error[:5000]
    elif result.state == "PRUNED":
        metrics, tags = {"pruned_at_step": result.pruned_at, "trial_seconds": seconds}, {TAG_STATE: "PRUNED"}
    else:
        metrics = {"trial_seconds": seconds}
        tags = {TAG_STATE: "FAIL", "tunedag.error": (result.error or "")[:5000], "tunedag.traceback": (result.traceback or "")[-5000:]}
    log_values(client, run_id, params=job.params, metrics=metrics, tags=tags, steps=result.steps, first_step=1)
    client.set_terminated(run_id, status="FAILED" if result.state == "FAIL" else "FINISHED")


class Recorder:
    """One background thread that runs MLflow writes in the order they were put; `drain` waits for all.

    The queue is bounded, so a slow tracking store slows the trial loop down instead of
    piling up finished trials in memory.
    """

    def __init__(self, size: int = 32):
        self._queue: queue.Queue = queue.Queue(size)
        threading.Thread(target=self._loop, name="tunedag-mlflow-recorder", daemon=True).start()

    def put(self, fn: Any, *args: Any) -> Future:
        """Queue `fn(*args)`; the future holds its return once the thread has run it."""
        done: Future = Future()
        self._queue.put((fn, args, done))
        return done

    def drain(self) -> None:
        self._queue.join()

    def _loop(self) -> None:
        while True:
            fn, args, done = self._queue.get()
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # never lose the thread; the write's own function logs its failures
                done.set_exception(exc)
            finally:
                self._queue.task_done()


_RECORDER: Recorder | None = None
_RECORDER_LOCK = threading.Lock()


def recorder() -> Recorder:
    """This process's recorder, started on first use."""
    global _RECORDER
    with _RECORDER_LOCK:
        if _RECORDER is None:
            _RECORDER = Recorder()
        return _RECORDER


def drain_recorder() -> None:
    """Wait until every MLflow write put on this process's recorder is done (a no-op when none was)."""
    if _RECORDER is not None:
        _RECORDER.drain()


def close_stale_parents(tracker: Tracker, study_name: str) -> int:
    """Mark pipeline runs of this study left RUNNING by a killed process as KILLED."""
    stale = find_runs(tracker, f"tags.`{TAG_STUDY}` = '{study_name}' and tags.`{TAG_ROLE}` = 'pipeline' and attributes.status = 'RUNNING'")
    for run in stale:
        tracker.client.set_terminated(run.info.run_id, status="KILLED")
    return len(stale)


def reconcile_trials(tracker: Tracker, study: optuna.Study, orphans: list[int], parent_run_id: str, tags: dict[str, str]) -> None:
    """Make MLflow agree with Optuna after a crash: one child run per trial, none left RUNNING.

    A run whose trial finished in Optuna is FINISHED; a run whose trial was interrupted
    (`orphans`, already failed and re-queued in Optuna) is KILLED; an orphan with no run gets a KILLED one;
    a finished trial with no run (the store was down) gets one filled in from Optuna. Trials still
    running in another live worker are left alone.
    """
    runs = find_runs(tracker, f"tags.`{TAG_STUDY}` = '{study.study_name}' and tags.`{TAG_ROLE}` = 'trial'")
    by_trial = {int(r.data.tags[TAG_TRIAL]): r for r in runs}
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    states = {n: t.state for n, t in trials.items()}
    for number, run in by_trial.items():
        state = states.get(number)
        if number in orphans or (run.info.status == "RUNNING" and state in (TrialState.FAIL, None)):
            log_values(tracker.client, run.info.run_id, tags={"tunedag.error": "interrupted: the pipeline process died; parameters re-queued"})
            tracker.client.set_terminated(run.info.run_id, status="KILLED")
        elif run.info.status == "RUNNING" and state in (TrialState.COMPLETE, TrialState.PRUNED):
            _record_from_optuna(tracker, study, trials[number], run.info.run_id)  # the store failed mid-record
    for number in set(orphans) - set(by_trial):
        run_id = start_run(tracker, f"trial-{number}", {**tags, TAG_TRIAL: str(number), TAG_ROLE: "trial",
                                                          "tunedag.error": "interrupted before it was recorded; parameters re-queued"}, parent_run_id)
        tracker.client.set_terminated(run_id, status="KILLED")
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    for trial in study.get_trials(deepcopy=False, states=finished):
        if trial.number not in by_trial and trial.number not in orphans:
            fill_in_run(tracker, study, trial, parent_run_id, tags)


def recover_orphan_trials(study: optuna.Study, ctx: TrialContext) -> list[int]:
    """Fail and re-queue the trials of dead processes, and close or create their MLflow runs; their numbers.

    For a worker joining the study and the trial loop's waits: a trial killed between its ask and
    its claim counts as alive for its first 10 s, so a run started right after the kill finds it
    there, not in the tune flow's first recovery (which reconciles every trial).
    """
    orphans = [t.number for t in recover_orphans(study, ctx.cfg.families)]
    if orphans:
        reconcile_trials(Tracker(client_for(ctx.cfg.tracking.uri), ctx.experiment_id), study, orphans, ctx.parent_run_id, ctx.tags)
    return orphans


def fill_in_run(tracker: Tracker, study: optuna.Study, trial: optuna.trial.FrozenTrial, parent_run_id: str,
                tags: dict[str, str]) -> None:
    """Record in MLflow a trial that finished while the tracking store was down (its model files are gone)."""
    run_id = start_run(tracker, f"trial-{trial.number}", {**tags, TAG_TRIAL: str(trial.number), TAG_ROLE: "trial"}, parent_run_id)
    _record_from_optuna(tracker, study, trial, run_id)


def _record_from_optuna(tracker: Tracker, study: optuna.Study, trial: optuna.trial.FrozenTrial, run_id: str) -> None:
    state = trial.state.name
    metric = study.user_attrs.get("metric", "value")
    metrics = {f"val_{metric}": trial.values[0]} if state == "COMPLETE" else {}
    extra = {"tunedag.error": str(trial.user_attrs.get("error", ""))[:5000]} if state == "FAIL" else {}
    log_values(tracker.client, run_id, params=trial.params, metrics=metrics,
               tags={TAG_STATE: state, "tunedag.filled_in": "recorded from the Optuna study: the tracking store was unreachable", **extra})
    tracker.client.set_terminated(run_id, status="FAILED" if state == "FAIL" else "FINISHED")
