"""Repair what dead processes left: their pipeline runs, their trials, and runs a study lost.

A trial whose process died is told from its FINISHED run (its model is there: the order of record
wrote the run before telling Optuna), or else failed, re-queued and its run closed KILLED with why.
The tune flow runs this as it starts; a waiting tune loop runs it for trials other workers left.
"""

from __future__ import annotations

import json

import optuna
from mlflow.entities import Run
from optuna.trial import TrialState

from compat.optuna import study_storage, trial_id
from studies.storage import owner_alive, process_alive
from tracking.runs import log_values
from tracking.store import Tracker, find_runs
from tracking.study_run import TAG_STOP_REASON
from tracking.tags import TAG_ERROR, TAG_OWNER, TAG_ROLE, TAG_STATE, TAG_STUDY, TAG_TRIAL
from trials.records import TAG_PARAMS, TAG_VALUES, TrialContext, fail_and_requeue, kill_run
from tunedag.errors import TunedagError
from tunedag.space import suggest

DIED = "interrupted: the process running it died"


def close_stale_parents(tracker: Tracker, study_name: str) -> None:
    """Close this study's pipeline runs left RUNNING by a process that died: KILLED, with why; a live one's run is left."""
    for run in find_runs(
        tracker,
        f"tags.`{TAG_STUDY}` = '{study_name}' and tags.`{TAG_ROLE}` = 'pipeline' and attributes.status = 'RUNNING'",
    ):
        if not process_alive(run.data.tags.get(TAG_OWNER)):
            log_values(tracker.client, run.info.run_id, tags={TAG_STOP_REASON: DIED})
            tracker.client.set_terminated(run.info.run_id, status="KILLED")


def recover_orphan_trials(study: optuna.Study, ctx: TrialContext, whole: bool = False) -> list[int]:
    """Repair what dead processes left (`_settle` each orphan trial); the orphans' numbers.

    With `whole` (the tune flow's start) every run is checked too (`_reconcile`).
    """
    orphans = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if not owner_alive(t)]
    if not orphans and not whole:
        return []
    runs = _runs_by_trial(ctx)
    for t in orphans:
        try:
            _settle(study, ctx, t.number, runs.get(t.number), t.params)
        except (RuntimeError, ValueError):  # another worker recovered it first
            continue
    if whole:
        _reconcile(study, ctx, _runs_by_trial(ctx) if orphans else runs)
    return [t.number for t in orphans]


def _reconcile(study: optuna.Study, ctx: TrialContext, runs: dict[int, Run]) -> None:
    """Failed trials' runs closed (or created) with their reason; runs of trials the study lost (a journal's lost tail) told again."""
    trials = study.get_trials(deepcopy=False)
    for t in (t for t in trials if t.state == TrialState.FAIL):
        run, error = runs.get(t.number), str(t.user_attrs.get("error", "failed"))
        if run is None or run.info.status == "RUNNING":
            killed = run is not None or error.startswith(("interrupted", "not recorded"))
            kill_run(ctx, run.info.run_id if run else None, t.number, error, t.params, "KILLED" if killed else "FAILED")
    for number in sorted(n for n in runs if n >= len(trials)):  # the journal lost its last records (an OS crash): in order
        run = runs[number]
        if number != len(study.get_trials(deepcopy=False)) or TAG_PARAMS not in run.data.tags:
            raise TunedagError(
                f"MLflow run {run.info.run_id} is trial {number}, which study {study.study_name} lost "
                "and cannot be given back in order; delete that run or the study (tune.storage) and run again."
            )
        study.enqueue_trial(json.loads(run.data.tags[TAG_PARAMS]), skip_if_exists=False)
        suggest(trial := study.ask(), ctx.cfg.families)
        if run.info.status in ("FINISHED", "RUNNING"):
            _settle(study, ctx, trial.number, run, trial.params)
        else:
            trial.set_user_attr("error", run.data.tags.get(TAG_ERROR, run.info.status))
            study.tell(trial, state=TrialState.FAIL)


def _settle(study: optuna.Study, ctx: TrialContext, number: int, run: Run | None, params: dict) -> None:
    """Tell an orphan what its FINISHED run recorded; else fail it as died, re-queue it and close its run KILLED."""
    if run is None or run.info.status != "FINISHED" or TAG_STATE not in run.data.tags:
        fail_and_requeue(study, ctx, number, params, DIED)
        return kill_run(ctx, run.info.run_id if run else None, number, f"{DIED}; parameters re-queued", params)
    study_storage(study).set_trial_user_attr(trial_id(study.get_trials(deepcopy=False)[number]), "mlflow_run_id", run.info.run_id)
    if run.data.tags[TAG_STATE] == "PRUNED":
        study.tell(number, state=TrialState.PRUNED)
    else:
        study.tell(number, json.loads(run.data.tags[TAG_VALUES]))


def _runs_by_trial(ctx: TrialContext) -> dict[int, Run]:
    """The study's trial runs by trial number (the latest when a number has several)."""
    runs = find_runs(ctx.tracker(), f"tags.`{TAG_STUDY}` = '{ctx.study_name}' and tags.`{TAG_ROLE}` = 'trial'")
    return {int(r.data.tags[TAG_TRIAL]): r for r in sorted(runs, key=lambda r: r.info.start_time)}
