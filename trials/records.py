"""A trial's records in Optuna and MLflow: its context, its run, what it wrote, and a trial failed and re-queued.

A trial's order of record: evaluate, save the model (trials.job, on the runner), write its MLflow run
(`record`, from the trial task in the flow's process), then tell Optuna (the trial loop, flows.tune).
So a trial Optuna holds as COMPLETE always has its FINISHED run and model, whenever the process is killed.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from compat.optuna import study_storage, trial_id
from modelio.mlflow_models import MODEL_ARTIFACT
from runners import Runner
from tracking import runs
from tracking.store import Tracker, client_for
from tracking.tags import TAG_ERROR, TAG_ROLE, TAG_STATE, TAG_TRIAL
from trials.job import JobResult, TrialJob
from tunedag.config import Config
from tunedag.selection import score_prefix
from tunedag.space import is_complete

TAG_VALUES = "tunedag.values"  # the objective values told to Optuna, as JSON: what a recovery tells again
TAG_PARAMS = "tunedag.params"  # the trial's parameters with their types, as JSON
INTERRUPTED = "interrupted: stopped by Ctrl-C or SIGTERM; parameters re-queued"


@dataclass(frozen=True)
class TrialContext:
    """What every trial task needs: references, the runner its job goes to, and the loop's stop flag."""

    cfg: Config
    data_version: str
    experiment_id: str
    parent_run_id: str
    study_name: str
    tags: dict[str, str]
    runner: Runner | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def tracker(self) -> Tracker:
        return Tracker(client_for(self.cfg.tracking.uri), self.experiment_id)

    def trial_tags(self, number: int) -> dict[str, str]:
        return {**self.tags, TAG_TRIAL: str(number), TAG_ROLE: "trial"}


def start_trial(ctx: TrialContext, trial: optuna.Trial, params: dict, prune: bool) -> tuple[str, TrialJob]:
    """Create the trial's run; its id and the trial's job (its model saved into the run's folder when that is on this disk)."""
    run = runs.start_run(ctx.tracker(), f"trial-{trial.number}", ctx.trial_tags(trial.number), ctx.parent_run_id)
    folder = runs.local_artifact_dir(run.info.artifact_uri)
    model_dir = str(folder / MODEL_ARTIFACT) if folder else f"runs:/{run.info.run_id}/{MODEL_ARTIFACT}"  # uploaded by the worker
    job = TrialJob(ctx.cfg, ctx.data_version, ctx.study_name, trial_id(trial), trial.number, params, prune, model_dir)
    return run.info.run_id, job


def record(client, run_id: str, job: TrialJob, result: JobResult, seconds: float) -> None:
    """Write the finished trial to its run (params, metrics with steps, tags; the job wrote the model) in one batch, close it."""
    metrics, tags = {"trial_seconds": seconds}, {TAG_STATE: result.state, TAG_PARAMS: json.dumps(job.params)}
    if result.state == "COMPLETE":
        metrics |= {f"{score_prefix(job.cfg.data.cv_folds)}_{k}": v for k, v in result.metrics.items()}
        tags |= {"tunedag.objective": job.cfg.tune.metric, TAG_VALUES: json.dumps(result.values)}
    elif result.state == "PRUNED":
        metrics["pruned_at_step"] = result.pruned_at
    else:
        tags |= {TAG_ERROR: (result.error or "")[:5000], "tunedag.traceback": (result.traceback or "")[-5000:]}
    runs.log_values(client, run_id, params=job.params, metrics=metrics, tags=tags, steps=result.steps, first_step=1)
    client.set_terminated(run_id, status="FINISHED" if result.state in ("COMPLETE", "PRUNED") else "FAILED")  # UNRECORDED too


def fail_and_requeue(study: optuna.Study, ctx: TrialContext, number: int, params: dict, error: str) -> None:
    """Fail a trial that did not run to its end (not a genuine failure) and queue its parameters again."""
    study_storage(study).set_trial_user_attr(trial_id(study.get_trials(deepcopy=False)[number]), "error", error)
    study.tell(number, state=TrialState.FAIL)
    if is_complete(params, ctx.cfg.families):  # one killed while its parameters were sampled has nothing to re-run
        study.enqueue_trial(params, user_attrs={"requeued_from": number}, skip_if_exists=False)


def kill_run(
    ctx: TrialContext, run_id: str | None, number: int, reason: str, params: dict | None = None, status: str = "KILLED"
) -> None:
    """Close the run of a trial Optuna holds as failed with the reason and its parameters (creating the run when it had none)."""
    tracker = ctx.tracker()
    run_id = run_id or runs.start_run(tracker, f"trial-{number}", ctx.trial_tags(number), ctx.parent_run_id).info.run_id
    runs.log_values(tracker.client, run_id, params=params, tags={TAG_STATE: "FAIL", TAG_ERROR: reason[:5000]})
    tracker.client.set_terminated(run_id, status=status)
