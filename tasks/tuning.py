"""Tuning tasks: one trial as a Prefect task, its MLflow run, and the repair of trials a dead process left behind.

A trial's order of record: evaluate, save the model (the job, on the runner), write its MLflow run
(this task, in the flow's process), then tell Optuna (the trial loop). So a trial Optuna holds as
COMPLETE always has its FINISHED run and model, whenever the process is killed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
from optuna.trial import TrialState
from prefect import task
from prefect.cache_policies import NO_CACHE

from compat.optuna import study_storage, trial_id
from runners import Limits, Runner, TrialLimitExceeded, default_threads, make_runner
from studies.storage import owner_alive
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
    client_for,
    create_run,
    find_runs,
    local_artifact_dir,
    log_values,
    start_run,
)
from tasks.trial_worker import JobResult, TrialJob, discard, run_job
from tunedag.config import Config
from tunedag.errors import TunedagError
from tunedag.estimators import is_torch_estimator
from tunedag.space import is_complete, suggest

TAG_VALUES = "tunedag.values"  # the objective values told to Optuna, as JSON: what a recovery tells again
TAG_PARAMS = "tunedag.params"  # the trial's parameters with their types, as JSON
TAG_ERROR = "tunedag.error"
PRELOAD = ("tasks.trial_worker", "mlflow.sklearn", "modelio.skops_io")  # what the forkserver imports once
NETS_PRELOAD = ("tunedag.nets", "mlflow.pytorch")  # torch itself, for studies of networks
INTERRUPTED = "interrupted: stopped by Ctrl-C or SIGTERM; parameters re-queued"


@dataclass(frozen=True)
class TrialContext:
    """What every trial task needs: references, the runner its job goes to, and the loop's stop flag."""

    cfg: Config
    data_path: Path
    data_version: str
    experiment_id: str
    parent_run_id: str
    study_name: str
    tags: dict[str, str]
    runner: Runner | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def tracker(self) -> Tracker:
        return Tracker(client_for(self.cfg.tracking.uri), self.experiment_id)


@dataclass(frozen=True)
class TrialResult:
    """A trial's outcome as the loop tells it: COMPLETE, PRUNED, FAIL, or UNRECORDED / INTERRUPTED (re-queued)."""

    number: int
    state: str
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


def runner_for(cfg: Config) -> Runner:
    """The runner `tune.runner.kind` and `tune.executor` name, with the trial limits and the trial code preloaded."""
    tune = cfg.tune
    limits = Limits(default_threads(tune.parallelism, tune.threads_per_trial), tune.trial_timeout, tune.trial_memory_mb)
    nets = any(f.estimator and is_torch_estimator(f.estimator) for f in cfg.families.values())
    kind = "dask" if tune.runner.kind == "dask" else tune.executor
    return make_runner(kind, tune.parallelism, limits, PRELOAD + (NETS_PRELOAD if nets else ()), tune.runner.address)


def trial_tags(ctx: TrialContext, number: int, **extra: str) -> dict[str, str]:
    return {**ctx.tags, TAG_TRIAL: str(number), TAG_ROLE: "trial", **extra}


def start_trial_run(ctx: TrialContext, number: int) -> tuple[str, str | None]:
    """Create the trial's run; its id and where its model goes: the local artifact folder, else `runs:/<id>/model` (uploaded by the worker)."""
    run = create_run(ctx.tracker(), f"trial-{number}", trial_tags(ctx, number), ctx.parent_run_id)
    folder = local_artifact_dir(run.info.artifact_uri)
    return run.info.run_id, str(folder / MODEL_ARTIFACT) if folder else f"runs:/{run.info.run_id}/{MODEL_ARTIFACT}"


@task(cache_policy=NO_CACHE, task_run_name="trial-{job.number}")
def run_trial(ctx: TrialContext, job: TrialJob, run_id: str) -> TrialResult:
    """Run the trial's job on the runner, then write its MLflow run in full and close it; never raises.

    A failing, timed-out or crashed trial is recorded as FAILED with its reason. A run that cannot
    be written comes back UNRECORDED (the loop fails the trial and re-queues it: never COMPLETE
    without its run); a trial stopped by the loop's interruption comes back INTERRUPTED, unwritten.
    """
    started = time.perf_counter()
    try:
        result = ctx.runner.submit(run_job, job).result()
    except TrialLimitExceeded as exc:
        result = JobResult("FAIL", error=f"TrialLimitExceeded: {exc}")
    seconds = time.perf_counter() - started
    try:
        if ctx.stop.is_set() and result.state == "FAIL":  # killed by the stop, or failing as it came
            return TrialResult(job.number, "INTERRUPTED", None, INTERRUPTED, run_id, seconds)
        record(ctx.tracker().client, run_id, job, result, seconds, ctx.cfg.tune.metric)
    except Exception as exc:  # the tracking store failed: Optuna must not hold a trial MLflow lacks
        return TrialResult(job.number, "UNRECORDED", None, f"not recorded: MLflow failed ({exc})"[:2000], run_id, seconds)
    finally:
        discard(result)
    return TrialResult(job.number, result.state, result.values if result.state != "FAIL" else None, result.error, run_id, seconds)


def record(client, run_id: str, job: TrialJob, result: JobResult, seconds: float, metric: str) -> None:
    """Write the finished trial to its run (model, params, metrics with steps, tags) in one batch, then close it."""
    if result.state == "COMPLETE":
        if result.model_dir and not result.in_place:
            client.log_artifacts(run_id, result.model_dir, MODEL_ARTIFACT)
        metrics = {**{f"val_{k}": v for k, v in result.metrics.items()}, "trial_seconds": seconds}
        tags = {TAG_STATE: "COMPLETE", "tunedag.objective": metric, TAG_VALUES: json.dumps(result.values)}
    elif result.state == "PRUNED":
        metrics, tags = {"pruned_at_step": result.pruned_at, "trial_seconds": seconds}, {TAG_STATE: "PRUNED"}
    else:
        metrics = {"trial_seconds": seconds}
        tags = {TAG_STATE: "FAIL", TAG_ERROR: (result.error or "")[:5000], "tunedag.traceback": (result.traceback or "")[-5000:]}
    tags[TAG_PARAMS] = json.dumps(job.params)
    log_values(client, run_id, params=job.params, metrics=metrics, tags=tags, steps=result.steps, first_step=1)
    client.set_terminated(run_id, status="FAILED" if result.state == "FAIL" else "FINISHED")


def fail_and_requeue(study: optuna.Study, number: int, params: dict, error: str, families: dict) -> None:
    """Fail a trial that did not run to its end (not a genuine failure) and queue its parameters again."""
    study_storage(study).set_trial_user_attr(_id(study, number), "error", error)
    study.tell(number, state=TrialState.FAIL)
    if is_complete(params, families):  # one killed while its parameters were sampled has nothing to re-run
        study.enqueue_trial(params, user_attrs={"requeued_from": number}, skip_if_exists=False)


def kill_run(
    tracker: Tracker,
    run_id: str | None,
    number: int,
    parent_run_id: str,
    tags: dict[str, str],
    reason: str,
    params: dict | None = None,
) -> None:
    """Close the trial's run KILLED with the reason and the trial's parameters (creating the run when it had none)."""
    if not run_id:
        run_id = start_run(tracker, f"trial-{number}", {**tags, TAG_TRIAL: str(number), TAG_ROLE: "trial"}, parent_run_id)
    log_values(tracker.client, run_id, params=params, tags={TAG_ERROR: reason})
    tracker.client.set_terminated(run_id, status="KILLED")


def close_stale_parents(tracker: Tracker, study_name: str) -> int:
    """Mark pipeline runs of this study left RUNNING by a killed process as KILLED."""
    stale = find_runs(
        tracker, f"tags.`{TAG_STUDY}` = '{study_name}' and tags.`{TAG_ROLE}` = 'pipeline' and attributes.status = 'RUNNING'"
    )
    for run in stale:
        tracker.client.set_terminated(run.info.run_id, status="KILLED")
    return len(stale)


def recover_orphan_trials(study: optuna.Study, ctx: TrialContext, whole: bool = False) -> list[int]:
    """Repair what dead processes left: trials RUNNING in Optuna, runs RUNNING in MLflow; the orphans' numbers.

    An orphan whose run is FINISHED was recorded but not told: it is told now with the recorded
    values (no re-evaluation). Any other orphan is failed, its parameters re-queued, and its run
    closed KILLED with why (created if it had none). With `whole` (the tune flow's start) every run
    is checked too: a RUNNING run of a finished trial is closed with the trial's own reason, and a
    failed trial with no run (the store was down) gets a FAILED one with that reason; runs of
    trials the study lost (a journal that lost its tail) are told again in order.
    """
    orphans = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if not owner_alive(t)]
    if not orphans and not whole:
        return []
    tracker = ctx.tracker()
    runs = _runs_by_trial(tracker, ctx.study_name)
    for t in orphans:
        run = runs.get(t.number)
        try:
            if run is not None and run.info.status == "FINISHED" and TAG_STATE in run.data.tags:
                _tell_recorded(study, t.number, run)
            else:
                fail_and_requeue(study, t.number, t.params, "interrupted: the process running it died", ctx.cfg.families)
                kill_run(
                    tracker,
                    run.info.run_id if run else None,
                    t.number,
                    ctx.parent_run_id,
                    ctx.tags,
                    "interrupted: the process running it died; parameters re-queued",
                    t.params,
                )
        except (RuntimeError, ValueError):  # another worker recovered it first
            continue
    if whole:
        _reconcile(study, ctx, tracker, _runs_by_trial(tracker, ctx.study_name) if orphans else runs)
    return [t.number for t in orphans]


def _reconcile(study: optuna.Study, ctx: TrialContext, tracker: Tracker, runs: dict) -> None:
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        run = runs.get(t.number)
        error = str(t.user_attrs.get("error", "failed"))
        if t.state == TrialState.FAIL and run is None:
            run_id = start_run(tracker, f"trial-{t.number}", trial_tags(ctx, t.number), ctx.parent_run_id)
            log_values(tracker.client, run_id, params=t.params, tags={TAG_STATE: "FAIL", TAG_ERROR: error[:5000]})
            tracker.client.set_terminated(
                run_id, status="KILLED" if error.startswith(("interrupted", "not recorded")) else "FAILED"
            )
        elif t.state == TrialState.FAIL and run.info.status == "RUNNING":
            kill_run(tracker, run.info.run_id, t.number, ctx.parent_run_id, ctx.tags, error[:5000], t.params)
    lost = sorted(n for n in runs if n >= len(trials))
    for number in lost:  # the study lost its last records (journal_sync false and an OS crash): its trials come back in order
        run = runs[number]
        if number != len(study.get_trials(deepcopy=False)) or TAG_PARAMS not in run.data.tags:
            raise TunedagError(
                f"MLflow run {run.info.run_id} is trial {number}, which study {study.study_name} lost "
                "and cannot be given back in order; delete that run or the study (tune.storage) and run again."
            )
        study.enqueue_trial(json.loads(run.data.tags[TAG_PARAMS]), skip_if_exists=False)
        trial = study.ask()
        suggest(trial, ctx.cfg.families)
        if run.info.status == "FINISHED" and TAG_STATE in run.data.tags:
            _tell_recorded(study, trial.number, run)
        elif run.info.status == "RUNNING":
            fail_and_requeue(study, trial.number, trial.params, "interrupted: the process running it died", ctx.cfg.families)
            kill_run(tracker, run.info.run_id, number, ctx.parent_run_id, ctx.tags, "interrupted: the process running it died")
        else:
            study_storage(study).set_trial_user_attr(trial_id(trial), "error", run.data.tags.get(TAG_ERROR, run.info.status))
            study.tell(trial, state=TrialState.FAIL)


def _tell_recorded(study: optuna.Study, number: int, run) -> None:
    """Tell a trial the state and values its FINISHED run recorded."""
    study_storage(study).set_trial_user_attr(_id(study, number), "mlflow_run_id", run.info.run_id)
    if run.data.tags[TAG_STATE] == "PRUNED":
        study.tell(number, state=TrialState.PRUNED)
    else:
        study.tell(number, json.loads(run.data.tags[TAG_VALUES]))


def _runs_by_trial(tracker: Tracker, study_name: str) -> dict:
    """The study's trial runs by trial number (the latest when a number has several)."""
    runs = find_runs(tracker, f"tags.`{TAG_STUDY}` = '{study_name}' and tags.`{TAG_ROLE}` = 'trial'")
    return {int(r.data.tags[TAG_TRIAL]): r for r in sorted(runs, key=lambda r: r.info.start_time)}


def _id(study: optuna.Study, number: int) -> int:
    return trial_id(study.get_trials(deepcopy=False)[number])


def job_for(ctx: TrialContext, trial: optuna.Trial, params: dict, model_dir: str | None, prune: bool) -> TrialJob:
    return replace(
        TrialJob(ctx.cfg, ctx.data_path, ctx.data_version, ctx.study_name, trial_id(trial), trial.number, params, prune),
        model_dir=model_dir,
    )
