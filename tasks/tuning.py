"""Tuning tasks: open the study and its MLflow parent run, run one trial, reconcile after a crash."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

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
    find_runs,
    log_values,
    start_run,
)
from tasks.trial_worker import JobResult, TrialJob, discard, executor_for, run_job
from tunedag.config import Config
from tunedag.executor import TrialLimitExceeded


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


@task(cache_policy=NO_CACHE, task_run_name="trial-{job.number}")
def run_trial(ctx: TrialContext, job: TrialJob) -> TrialResult:
    """Evaluate one configuration on the trial executor and record it as a child MLflow run.

    A failing, timed-out or crashed trial is recorded, never raised. When the tracking store
    fails, the result still goes back to Optuna (`run_id` empty); the next run fills the run in.
    """
    started = time.perf_counter()
    run_id = _start_trial_run(ctx, job.number)
    try:
        result = executor_for(ctx.cfg, ctx.executor).run(run_job, job)
    except TrialLimitExceeded as exc:
        result = JobResult("FAIL", error=f"TrialLimitExceeded: {exc}")
    seconds = time.perf_counter() - started
    try:
        if run_id:
            _record(ctx, run_id, job, result, seconds)
    except Exception as exc:  # the store went away mid-study: Optuna keeps the trial, reconcile fills MLflow in
        get_run_logger().warning("trial %d: MLflow recording failed (%s); it is filled in on the next run", job.number, exc)
        run_id = ""
    finally:
        discard(result)
    values = result.values if result.state != "FAIL" else None
    return TrialResult(job.number, result.state, values, result.error, run_id or "", seconds)


def _start_trial_run(ctx: TrialContext, number: int) -> str:
    tags = {**ctx.tags, TAG_TRIAL: str(number), TAG_ROLE: "trial"}
    try:
        return start_run(Tracker(client_for(ctx.cfg.tracking.uri), ctx.experiment_id), f"trial-{number}", tags, ctx.parent_run_id)
    except Exception as exc:
        get_run_logger().warning("trial %d: no MLflow run (%s); it is filled in on the next run", number, exc)
        return ""


def _record(ctx: TrialContext, run_id: str, job: TrialJob, result: JobResult, seconds: float) -> None:
    client, metric = client_for(ctx.cfg.tracking.uri), ctx.cfg.tune.metric
    if result.state == "COMPLETE":
        if result.model_dir:
            client.log_artifacts(run_id, result.model_dir, MODEL_ARTIFACT)
        metrics = {**{f"val_{k}": v for k, v in result.metrics.items()}, "trial_seconds": seconds}
        tags = {TAG_STATE: "COMPLETE", "tunedag.objective": metric}
    elif result.state == "PRUNED":
        metrics, tags = {"pruned_at_step": result.pruned_at, "trial_seconds": seconds}, {TAG_STATE: "PRUNED"}
    else:
        metrics = {"trial_seconds": seconds}
        tags = {TAG_STATE: "FAIL", "tunedag.error": (result.error or "")[:5000], "tunedag.traceback": (result.traceback or "")[-5000:]}
    log_values(client, run_id, params=job.params, metrics=metrics, tags=tags, steps=result.steps, first_step=1)
    client.set_terminated(run_id, status="FAILED" if result.state == "FAIL" else "FINISHED")


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
