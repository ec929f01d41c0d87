"""Stage 2: run the Optuna study, one Prefect task per trial, the flow driving ask/tell."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import TrialState
from prefect import flow, get_run_logger
from prefect.exceptions import TerminationSignal
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from compat.optuna import study_storage, trial_id
from reporting.render import format_progress
from studies.retune import plan_run
from studies.seeding import check_warm_start_source, enqueue_manual, warm_start
from studies.storage import FINISHED, HEARTBEAT_S, PARENT_RUN_ATTR, beat, claim, close_study, grid_points_left, open_study, tally
from tasks.lineage import check_registry_problem, log_dataset
from tasks.reports import summarise_study
from tasks.tracking import TAG_ROLE, Tracker, log_values, open_tracker, redact, start_run
from tasks.tuning import (
    INTERRUPTED,
    TrialContext,
    TrialResult,
    close_stale_parents,
    fail_and_requeue,
    job_for,
    kill_run,
    lineage_tags,
    recover_orphan_trials,
    run_trial,
    runner_for,
    start_trial_run,
)
from tunedag.config import Config
from tunedag.data import SPLIT, file_md5, load_prepared, require_prepared
from tunedag.errors import TunedagError
from tunedag.estimators import check_estimator_for_task
from tunedag.metrics import METRICS, check_metric_for_task
from tunedag.problem import problem_of, problem_tags, read_problem
from tunedag.samplers import build_sampler
from tunedag.selection import validation_scheme
from tunedag.space import check_configuration, suggest
from tunedag.stopping import Decision, Snapshot, StopRules, decide, is_surplus


@flow(name="tune")
def tune_flow(cfg: Config, checked_version: str | None = None) -> dict:
    """Tune until the study holds `tune.n_trials` finished trials (or a stop rule fires); return the summary.

    `checked_version`: the caller has checked the inputs (`_check_inputs`) and this is the data version it returned.
    """
    data_version = checked_version or _check_inputs(cfg)
    tracker = open_tracker(cfg.tracking)
    study = open_study(cfg, data_version)
    close_stale_parents(tracker, study.study_name)
    tags = {
        **lineage_tags(study.study_name, data_version),
        **problem_tags(read_problem(cfg.paths.prepared)),
        "tunedag.validation": validation_scheme(cfg.data.cv_folds),
    }
    parent = start_run(tracker, f"pipeline-{study.study_name}", {**tags, TAG_ROLE: "pipeline"})
    study.set_user_attr(PARENT_RUN_ATTR, parent)  # where workers that join the study nest their trials
    try:
        log_values(tracker.client, parent, params=_run_params(cfg))
        log_dataset(tracker.client, parent, load_prepared(cfg.paths.prepared, data_version), cfg, data_version)
        ctx = trial_context(cfg, data_version, tracker, parent, study.study_name, tags)
        recover_orphan_trials(study, ctx, whole=True)
        warm = warm_start(study, cfg)
        enqueue_manual(study, cfg)
        if warm:
            get_run_logger().info(
                "tunedag: warm start: %d trials queued from the best of study %s (the same problem)",
                len(warm),
                cfg.tune.warm_start.study,
            )
            log_values(
                tracker.client,
                parent,
                tags={
                    "tunedag.warm_start_from": cfg.tune.warm_start.study,
                    "tunedag.warm_start_trials": ",".join(map(str, warm)),
                },
            )
        reason = drive_trials(study, ctx)
        log_values(tracker.client, parent, tags={"tunedag.stop_reason": reason})
        if tally(study).complete == 0:
            raise TunedagError(
                f"No trial of study {study.study_name} completed; see the tunedag.error tag on the trial runs in MLflow."
            )
        summary = summarise_study(cfg, study, tracker, parent, data_version)
    except BaseException as exc:
        stopped = isinstance(exc, (KeyboardInterrupt, TerminationSignal))
        try:
            log_values(tracker.client, parent, tags={"tunedag.stop_reason": "interrupted" if stopped else str(exc)[:5000]})
            tracker.client.set_terminated(parent, status="KILLED" if stopped else "FAILED")
        except Exception:  # the store is down: the next run closes it as stale
            pass
        raise
    finally:
        close_study(study)
    tracker.client.set_terminated(parent, status="FINISHED")
    return summary


def trial_context(cfg: Config, data_version: str, tracker: Tracker, parent: str, study_name: str, tags: dict) -> TrialContext:
    """What each trial task gets (`drive_trials` adds the runner it starts)."""
    return TrialContext(cfg, cfg.paths.prepared, data_version, tracker.experiment_id, parent, study_name, tags)


def task_runner(cfg: Config) -> ThreadPoolTaskRunner:
    """Prefect's task runner for the trial tasks: threads that wait on the trial runner (`tasks.tuning.runner_for`)."""
    return ThreadPoolTaskRunner(max_workers=cfg.tune.parallelism + 1)


def _check_inputs(cfg: Config) -> str:
    """Refuse what cannot work before anything is written; return the data version."""
    from integrity.checks import verify_prepared  # its only use in this module

    version = verify_prepared(cfg)  # not what the prepare stage wrote (or DVC recorded): refused
    prep = load_prepared(cfg.paths.prepared, version)
    for metric in [m for m in (cfg.tune.metric, *cfg.tune.objectives) if m in METRICS]:  # a train_fn may name its own
        check_metric_for_task(metric, prep.task)
    for family in cfg.families.values():
        check_estimator_for_task(family.estimator, family.fixed, prep.task)
    if cfg.tune.sampler.name == "grid":
        build_sampler(cfg)
    for i, params in enumerate(cfg.tune.enqueue):
        check_configuration(params, cfg, f"tune.enqueue[{i}]")
    check_warm_start_source(cfg)
    check_registry_problem(cfg, problem_of(prep))  # another problem under final.registered_model: refused before any trial
    if cfg.data.cv_folds == 0 and not (prep.frame[SPLIT] == "val").any():
        raise TunedagError(
            f"{cfg.paths.prepared} has no validation rows; set data.val_size above 0 or data.cv_folds to 2 or more."
        )
    return version


def _run_params(cfg: Config) -> dict:
    return {
        "seed": cfg.seed,
        "estimator": cfg.model.estimator or ",".join(cfg.model.families),
        "sampler": cfg.tune.sampler.name,
        "pruner": cfg.tune.pruner.name,
        "fidelity": cfg.tune.fidelity.kind,
        "n_trials": cfg.tune.n_trials,
        "metric": cfg.tune.metric,
        "objectives": ",".join(cfg.tune.objectives),
        "parallelism": cfg.tune.parallelism,
        "cv_folds": cfg.data.cv_folds,
        "data_source": cfg.data.source,
    }


def drive_trials(study: optuna.Study, ctx: TrialContext) -> str:
    """Ask, submit one trial task per trial, wait for the first to end, tell it, decide (`tunedag.stopping.decide`).

    The trial runner starts here and is closed on the way out. The budget is global: every worker
    on the study counts the others' running trials. SIGTERM or Ctrl-C stops launching and stops
    the running trials within seconds: they are failed as interrupted (never counted in
    `tune.max_failed_trials`), their parameters re-queued, their runs KILLED, then KeyboardInterrupt
    is raised (the command exits 130). A second signal interrupts at once.
    """
    tune, logger, rules = ctx.cfg.tune, get_run_logger(), StopRules(ctx.cfg)
    prune = tune.fidelity.kind != "none" and len(tune.directions) == 1
    running: dict[Any, tuple[optuna.Trial, Any, str]] = {}  # wrapped future -> (trial, its task run, its MLflow run)
    failures, halt, beaten = 0, None, time.monotonic()
    with _Signals(ctx.stop), runner_for(ctx.cfg) as runner:
        runner.ship(ctx.data_path)  # a Dask cluster's workers get the prepared data once, not from this disk
        ctx = replace(ctx, runner=runner)
        while True:
            decision = (
                Decision("stop", halt) if halt else decide(_snapshot(study, ctx, len(running), failures), rules, time.monotonic())
            )
            if decision.action == "launch":
                halt = _launch(study, ctx, running, prune)
                continue
            if not running:
                if decision.action == "stop":
                    break
                ctx.stop.wait(1.0)  # the budget is held by other workers' running trials
                recover_orphan_trials(study, ctx)
                continue
            done = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED).done
            if ctx.stop.is_set():
                runner.close(cancel=True)  # the trial tasks come back INTERRUPTED within seconds
                done = wait(list(running), timeout=30).done
            for future in done:
                trial, task_run, run_id = running.pop(future)
                try:
                    result = task_run.result()
                except Exception as exc:  # the task itself broke: the trial fails with why, the study goes on
                    result = TrialResult(trial.number, "FAIL", None, f"{type(exc).__name__}: {exc}"[:2000], run_id, 0.0)
                failures, halt = _tell(study, ctx, trial, result, failures, halt)
                counts = tally(study)
                logger.info(
                    format_progress(
                        result.number,
                        result.state,
                        result.value,
                        counts.best,
                        counts.finished,
                        tune.n_trials,
                        tune.metric,
                        result.seconds,
                        result.error,
                    )
                )
            if time.monotonic() - beaten > HEARTBEAT_S:
                beat(study, [trial_id(trial) for trial, _, _ in running.values()])
                beaten = time.monotonic()
    if ctx.stop.is_set():
        raise KeyboardInterrupt
    if halt:
        raise TunedagError(
            f"The MLflow tracking store at {redact(ctx.cfg.tracking.uri)} (tracking.uri) failed mid-study ({halt}); "
            "the trials it could not record were failed and re-queued. Run again once it answers."
        )
    return decision.reason or "done"


def _snapshot(study: optuna.Study, ctx: TrialContext, ours: int, failures: int) -> Snapshot:
    tune, counts = ctx.cfg.tune, tally(study)
    since = 0
    if tune.patience is not None and counts.best is not None:
        since = sum(t.number > counts.best[0] for t in study.get_trials(deepcopy=False, states=FINISHED))
    grid = grid_points_left(study, next(iter(ctx.cfg.families.values())).space) if tune.sampler.name == "grid" else None
    queued = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) if tune.sampler.name == "manual" else None
    return Snapshot(counts.started, counts.finished, counts.best, since, ours, failures, grid, queued, ctx.stop.is_set())


def _launch(study: optuna.Study, ctx: TrialContext, running: dict, prune: bool) -> str | None:
    """Ask a trial, create its run, submit its task; a trial asked beyond the budget is given back. Why to halt, or None."""
    trial = study.ask()
    if is_surplus(tally(study).started, ctx.cfg.tune.n_trials, trial.number):
        _surplus(study, trial, ctx)
        return None
    claim(trial)  # an unclaimed trial is never taken for an orphan in its first 10 s
    params = suggest(trial, ctx.cfg.families)
    try:
        run_id, model_dir = start_trial_run(ctx, trial.number)
    except Exception as exc:  # the tracking store is down: nothing is run that cannot be recorded
        fail_and_requeue(study, trial.number, params, f"not recorded: MLflow failed ({exc})"[:2000], ctx.cfg.families)
        return f"trial {trial.number}'s run could not be created: {exc}"[:2000]
    task_run = run_trial.submit(quote(ctx), quote(job_for(ctx, trial, params, model_dir, prune)), run_id)
    running[task_run.wrapped_future] = (trial, task_run, run_id)
    return None


def _tell(
    study: optuna.Study, ctx: TrialContext, trial: optuna.Trial, result: TrialResult, failures: int, halt: str | None
) -> tuple[int, str | None]:
    """Tell Optuna what the trial task recorded; the failure count and why to halt, updated."""
    trial.set_user_attr("mlflow_run_id", result.run_id)
    if result.state == "COMPLETE":
        study.tell(trial, result.values)
    elif result.state == "PRUNED":
        study.tell(trial, state=TrialState.PRUNED)
    elif result.state == "UNRECORDED":
        fail_and_requeue(study, trial.number, trial.params, result.error, ctx.cfg.families)
        return failures, halt or result.error
    elif result.state == "INTERRUPTED" or (ctx.stop.is_set() and "TrialLimitExceeded" in (result.error or "")):
        fail_and_requeue(study, trial.number, trial.params, INTERRUPTED, ctx.cfg.families)
        kill_run(ctx.tracker(), result.run_id, trial.number, ctx.parent_run_id, ctx.tags, INTERRUPTED, trial.params)
    else:
        trial.set_user_attr("error", result.error)
        study.tell(trial, state=TrialState.FAIL)
        return failures + 1, halt
    return failures, halt


def _surplus(study: optuna.Study, trial: optuna.Trial, ctx: TrialContext) -> None:
    """Give back a trial asked beyond the budget by a race between workers (re-queueing fixed parameters)."""
    fixed = study_storage(study).get_trial_system_attrs(trial_id(trial)).get("fixed_params")
    trial.set_user_attr("error", "surplus: the trial budget was filled by other workers")
    study.tell(trial, state=TrialState.FAIL)
    if fixed:
        study.enqueue_trial(fixed, skip_if_exists=False)
    kill_run(
        ctx.tracker(), None, trial.number, ctx.parent_run_id, ctx.tags, "not run: the trial budget was filled by other workers"
    )


class _Signals:
    """Within the block, the first SIGTERM or SIGINT sets `stop`; a second one interrupts at once."""

    def __init__(self, stop: threading.Event):
        self.stop, self.previous = stop, {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()


def run(cfg: Config) -> dict:
    """Run the tune flow (the CLI's `tune`).

    A new study (new data or config) is warm-started from the previous study's best trials as
    `schedule.warm_start_top_k` says; `schedule.on_same_data` is left to the pipeline flow.
    """
    require_prepared(cfg.paths.prepared)
    cfg = plan_run(cfg, file_md5(cfg.paths.prepared), same_data_rule=False).cfg
    version = _check_inputs(cfg)  # bad input refused before the flow run: one paragraph, no flow run failing with its traceback
    return tune_flow.with_options(task_runner=task_runner(cfg))(cfg, version)


if __name__ == "__main__":
    from flows._cli import main

    raise SystemExit(main(run, __doc__))
