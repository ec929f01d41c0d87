"""Tuning tasks: open the study and its MLflow parent run, run one trial, reconcile after a crash."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.provenance import git_commit, prefect_flow_run_id
from tasks.tracking import (
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
    log_sklearn_model,
    log_values,
    start_run,
)
from tunedag.config import Config
from tunedag.data import load_prepared
from tunedag.estimators import skops_trusted_types
from tunedag.objective import Reporter, TrialPruned, evaluate


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


def optuna_reporter(trial: optuna.Trial) -> Reporter:
    """Report intermediate values to the Optuna trial and answer whether its pruner stops it."""

    def report(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return report


@task(cache_policy=NO_CACHE, task_run_name="trial-{number}")
def run_trial(ctx: TrialContext, number: int, params: dict[str, Any], reporter: Reporter | None = None) -> TrialResult:
    """Evaluate one configuration and record it as a child run; a failure is recorded, never raised."""
    started = time.perf_counter()
    client = client_for(ctx.cfg.tracking.uri)
    tags = {**ctx.tags, TAG_TRIAL: str(number), TAG_ROLE: "trial"}
    run_id = start_run(Tracker(client, ctx.experiment_id), f"trial-{number}", tags, ctx.parent_run_id)
    metric = ctx.cfg.tune.metric
    try:
        outcome = evaluate(ctx.cfg, load_prepared(ctx.data_path, ctx.data_version), params, reporter)
        log_sklearn_model(client, run_id, outcome.model, skops_trusted_types(outcome.model, ctx.cfg.model.trusted_types))
    except TrialPruned as pruned:
        log_values(client, run_id, params=params, tags={TAG_STATE: "PRUNED"},
                   metrics={"pruned_at_step": pruned.step, "trial_seconds": time.perf_counter() - started},
                   steps={f"val_{metric}_by_step": pruned.intermediate}, first_step=1)
        client.set_terminated(run_id, status="FINISHED")
        return TrialResult(number, "PRUNED", [pruned.intermediate[-1]], None, run_id, time.perf_counter() - started)
    except Exception as exc:  # a failing trial must never stop the study
        error = f"{type(exc).__name__}: {exc}"
        log_values(client, run_id, params=params, tags={TAG_STATE: "FAIL", "tunedag.error": error[:5000],
                                                        "tunedag.traceback": traceback.format_exc()[-5000:]})
        client.set_terminated(run_id, status="FAILED")
        return TrialResult(number, "FAIL", None, error, run_id, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    steps = {f"fold_{metric}": outcome.fold_values, f"val_{metric}_by_step": outcome.intermediate}
    log_values(client, run_id, params=params, tags={TAG_STATE: "COMPLETE", "tunedag.objective": metric},
               metrics={**{f"val_{k}": v for k, v in outcome.metrics.items()}, "trial_seconds": seconds},
               steps={k: v for k, v in steps.items() if v}, first_step=1)
    client.set_terminated(run_id, status="FINISHED")
    return TrialResult(number, "COMPLETE", outcome.values, None, run_id, seconds)


def close_stale_parents(tracker: Tracker, study_name: str) -> int:
    """Mark pipeline runs of this study left RUNNING by a killed process as KILLED."""
    stale = find_runs(tracker, f"tags.`{TAG_STUDY}` = '{study_name}' and tags.`{TAG_ROLE}` = 'pipeline' and attributes.status = 'RUNNING'")
    for run in stale:
        tracker.client.set_terminated(run.info.run_id, status="KILLED")
    return len(stale)


def reconcile_trials(tracker: Tracker, study: optuna.Study, orphans: list[int], parent_run_id: str, tags: dict[str, str]) -> None:
    """Make MLflow agree with Optuna after a crash: one child run per trial, none left RUNNING.

    A run whose trial completed in Optuna is FINISHED; a run whose trial was interrupted
    (`orphans`, already failed and re-queued in Optuna) is KILLED; an orphan with no run gets a KILLED one.
    """
    runs = find_runs(tracker, f"tags.`{TAG_STUDY}` = '{study.study_name}' and tags.`{TAG_ROLE}` = 'trial'")
    by_trial = {int(r.data.tags[TAG_TRIAL]): r for r in runs}
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for number, run in by_trial.items():
        if number in orphans or (run.info.status == "RUNNING" and states.get(number) != TrialState.COMPLETE):
            log_values(tracker.client, run.info.run_id, tags={"tunedag.error": "interrupted: the pipeline process died; parameters re-queued"})
            tracker.client.set_terminated(run.info.run_id, status="KILLED")
        elif run.info.status == "RUNNING":
            tracker.client.set_terminated(run.info.run_id, status="FINISHED")
    for number in set(orphans) - set(by_trial):
        run_id = start_run(tracker, f"trial-{number}", {**tags, TAG_TRIAL: str(number), TAG_ROLE: "trial",
                                                          "tunedag.error": "interrupted before it was recorded; parameters re-queued"}, parent_run_id)
        tracker.client.set_terminated(run_id, status="KILLED")
