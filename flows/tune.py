"""Stage 2: run the Optuna study, one Prefect task per trial, the flow driving ask/tell."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

import optuna
from optuna.trial import FrozenTrial, TrialState
from prefect import flow, get_run_logger
from prefect.exceptions import TerminationSignal
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from compat.optuna import queued_params, trial_id
from flows._cli import handling
from flows._inputs import tune_inputs
from reporting.render import format_progress
from runners.starting import runner_for, start_runner
from studies.configurations import DRAWN_AFTER, DUPLICATE_OF, count_held, enqueue_unheld, stand_ins, twin_of
from studies.retune import plan_run
from studies.seeding import enqueue_manual, warm_start
from studies.storage import FINISHED, HEARTBEAT_S, PARENT_RUN_ATTR, beat, claim, close_study, grid_points_left, open_study, tally
from tasks.reports import summarise_study
from tasks.tuning import run_trial
from tracking.provenance import lineage_tags
from tracking.runs import log_values
from tracking.store import open_tracker
from tracking.study_run import TAG_STOP_REASON, study_run
from trials import records, recovery
from trials.job import JobResult
from trials.records import TrialContext
from tunedag.config import Config
from tunedag.data import file_md5, load_prepared, require_prepared
from tunedag.errors import TunedagError, redact
from tunedag.problem import problem_tags, read_problem
from tunedag.samplers import continuation_seed
from tunedag.selection import validation_scheme
from tunedag.space import space_size, suggest
from tunedag.stopping import Decision, Snapshot, StopRules, decide, is_surplus


@flow(name="tune")
def tune_flow(cfg: Config, checked_version: str | None = None, runner: Future | None = None) -> dict:
    """Tune until the study holds `tune.n_trials` finished trials (or a stop rule fires); return the summary.

    `checked_version`: the caller has checked the inputs (`flows._inputs.tune_inputs`) and this is the data
    version it returned. `runner`: a future of the trial runner the caller started (`runners.starting.start_runner`).
    """
    data_version = checked_version or tune_inputs(cfg)
    tracker = open_tracker(cfg.tracking)
    study = open_study(cfg, data_version)
    recovery.close_stale_parents(tracker, study.study_name)
    tags = {
        **lineage_tags(study.study_name, data_version),
        **problem_tags(read_problem(cfg.paths.prepared)),
        "tunedag.validation": validation_scheme(cfg.data.cv_folds),
    }
    prepared, stopped = load_prepared(cfg.paths.prepared, data_version), (KeyboardInterrupt, TerminationSignal)
    try:
        with study_run(tracker, cfg, study.study_name, prepared, tags, stopped) as parent:
            study.set_user_attr(PARENT_RUN_ATTR, parent)  # where workers that join the study nest their trials
            ctx = TrialContext(cfg, data_version, tracker.experiment_id, parent, study.study_name, tags)
            recovery.recover_orphan_trials(study, ctx, whole=True)
            if warm := warm_start(study, cfg):
                source, numbers = cfg.tune.warm_start.study, ",".join(map(str, warm))
                get_run_logger().info(
                    "tunedag: warm start: %d trials queued from the best of study %s (the same problem)", len(warm), source
                )
                log_values(tracker.client, parent, tags={"tunedag.warm_start_from": source, "tunedag.warm_start_trials": numbers})
            enqueue_manual(study, cfg)
            reason = drive_trials(study, ctx, runner)
            log_values(tracker.client, parent, tags={TAG_STOP_REASON: reason})
            if tally(study).complete == 0:
                raise TunedagError(
                    f"No trial of study {study.study_name} completed; see the tunedag.error tag on the trial runs in MLflow."
                )
            return summarise_study(cfg, study, tracker, parent, data_version)
    finally:
        close_study(study)


def task_runner(cfg: Config) -> ThreadPoolTaskRunner:
    """Prefect's task runner for the trial tasks: threads that wait on the trial runner (`runners.starting.runner_for`)."""
    return ThreadPoolTaskRunner(max_workers=cfg.tune.parallelism + 1)


def drive_trials(study: optuna.Study, ctx: TrialContext, runner: Future | None = None) -> str:
    """Ask, submit one trial task per trial, wait for the first to end, tell it, decide (`tunedag.stopping.decide`).

    The runner (`runner`'s, else one started here) is closed on the way out. The budget is global: other
    workers' running trials count. SIGTERM or Ctrl-C stops launching and stops the running trials within
    seconds: failed as interrupted (not counted in `tune.max_failed_trials`), parameters re-queued, runs
    KILLED; then KeyboardInterrupt is raised (exit 130). A second signal interrupts at once.
    """
    tune, logger, rules = ctx.cfg.tune, get_run_logger(), StopRules(ctx.cfg)
    prune = tune.fidelity.kind != "none" and len(tune.directions) == 1
    running: dict[Future, tuple[optuna.Trial, Future, str]] = {}  # wrapped future -> (trial, its task run, its MLflow run)
    failures, stuck, halt, beaten = 0, False, None, time.monotonic()
    with _stop_on_signals(ctx.stop), runner.result() if runner else runner_for(ctx.cfg) as started:
        ctx = replace(ctx, runner=started)
        started.ship(ctx.cfg.paths.prepared)  # a Dask cluster's workers get the prepared data once, not from this disk
        while True:
            snapshot = _snapshot(study, ctx, len(running), failures, stuck)
            decision = Decision("stop", halt) if halt else decide(snapshot, rules, time.monotonic())
            if decision.action == "launch":
                halt, repeat = _launch(study, ctx, running, prune)
                if repeat is not None:
                    logger.info("tunedag: trial %d %s", repeat.number, repeat.user_attrs["error"])
                    if tune.sampler.name not in ("grid", "manual"):  # those keep their own order
                        seed = continuation_seed(ctx.cfg.seed, repeat.number, "repeat")
                        stuck = not enqueue_unheld(study, ctx.cfg.families, seed, repeat)
                continue
            if not running:
                if decision.action == "stop":
                    break
                ctx.stop.wait(1.0)  # the budget is held by other workers' running trials
                recovery.recover_orphan_trials(study, ctx)
                continue
            done = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED).done
            if ctx.stop.is_set():
                started.close(cancel=True)  # the trial tasks come back INTERRUPTED within seconds
                done = wait(list(running), timeout=30).done
            for future in done:
                trial, task_run, run_id = running.pop(future)
                try:
                    result = task_run.result()
                except Exception as exc:  # the task itself broke: the trial fails with why, the study goes on
                    result = JobResult("FAIL", error=f"{type(exc).__name__}: {exc}"[:2000])
                failures, halt = _tell(study, ctx, trial, result, run_id, failures, halt)
                r, n, value = result, tally(study), result.values[0] if result.values else None
                logger.info(
                    format_progress(
                        trial.number, r.state, value, n.best, n.finished, tune.n_trials, tune.metric, r.seconds, r.error
                    )
                )
            if time.monotonic() - beaten > HEARTBEAT_S:
                beat(study, [trial_id(trial) for trial, _, _ in running.values()])
                beaten = time.monotonic()
    if ctx.stop.is_set():
        raise KeyboardInterrupt
    for _ in range(0 if halt or tally(study).finished < tune.n_trials else stand_ins(study)):  # none stays WAITING
        claim(trial := study.ask())  # the oldest queued trial, or a new one should another worker have taken it first
        _not_run(study, ctx, trial, "not run: the trial budget was filled")
    if halt:
        raise TunedagError(
            f"The MLflow tracking store at {redact(ctx.cfg.tracking.uri)} (tracking.uri) failed mid-study ({halt}); "
            "the trials it could not record were failed and re-queued. Run again once it answers."
        )
    return decision.reason or "done"


def _snapshot(study: optuna.Study, ctx: TrialContext, ours: int, failures: int, stuck: bool) -> Snapshot:
    tune, counts, size = ctx.cfg.tune, tally(study), space_size(ctx.cfg.families)
    since = 0
    if tune.patience is not None and counts.best is not None:
        since = sum(t.number > counts.best[0] for t in study.get_trials(deepcopy=False, states=FINISHED))
    grid = grid_points_left(study, next(iter(ctx.cfg.families.values())).space) if tune.sampler.name == "grid" else None
    queued = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) if tune.sampler.name == "manual" else None
    left = None if size is None else size - count_held(study)
    return Snapshot(
        counts.started, counts.finished, counts.best, since, ours, failures, grid, queued, ctx.stop.is_set(), left, stuck
    )


def _launch(study: optuna.Study, ctx: TrialContext, running: dict, prune: bool) -> tuple[str | None, FrozenTrial | None]:
    """Ask a trial, create its run, submit its task. Why to halt (or None), and the trial if it repeated a configuration.

    A trial asked beyond the budget is given back, and one whose configuration the study holds
    (`studies.configurations`) is not run: both fail with why, their runs KILLED.
    """
    trial = study.ask()
    claim(trial)  # surplus trials too: each trial names the process that asked it
    if is_surplus(tally(study).started, ctx.cfg.tune.n_trials, trial.number):  # a race between workers filled the budget
        asked = study.get_trials(deepcopy=False)[trial.number]
        if (fixed := queued_params(asked)) and DRAWN_AFTER not in asked.user_attrs:  # a repeat's stand-in is moot now
            study.enqueue_trial(fixed, skip_if_exists=False)
        _not_run(study, ctx, trial, "not run: the trial budget was filled by other workers")
        return None, None
    params = suggest(trial, ctx.cfg.families)
    if (twin := twin_of(study, trial.number, params)) is not None:
        trial.set_user_attr(DUPLICATE_OF, twin)
        _not_run(study, ctx, trial, f"not run: trial {twin} holds the same configuration", params)
        return None, study.get_trials(deepcopy=False)[trial.number]
    try:
        run_id, job = records.start_trial(ctx, trial, params, prune)
    except Exception as exc:  # the tracking store is down: nothing is run that cannot be recorded
        records.fail_and_requeue(study, ctx, trial.number, params, f"not recorded: MLflow failed ({exc})"[:2000])
        return f"trial {trial.number}'s run could not be created: {exc}"[:2000], None
    task_run = run_trial.submit(quote(ctx), quote(job), run_id)
    running[task_run.wrapped_future] = (trial, task_run, run_id)
    return None, None


def _not_run(study: optuna.Study, ctx: TrialContext, trial: optuna.Trial, why: str, params: dict | None = None) -> None:
    """Fail a trial that is not run (never counted against `tune.max_failed_trials`) and close its run with why."""
    trial.set_user_attr("error", why)
    study.tell(trial, state=TrialState.FAIL)
    records.kill_run(ctx, None, trial.number, why, params)


def _tell(
    study: optuna.Study, ctx: TrialContext, trial: optuna.Trial, result: JobResult, run_id: str, failures: int, halt: str | None
) -> tuple[int, str | None]:
    """Tell Optuna what the trial task recorded; the failure count and why to halt, updated."""
    trial.set_user_attr("mlflow_run_id", run_id)
    if result.state == "COMPLETE":
        study.tell(trial, result.values)
    elif result.state == "PRUNED":
        study.tell(trial, state=TrialState.PRUNED)
    elif result.state == "UNRECORDED":
        records.fail_and_requeue(study, ctx, trial.number, trial.params, result.error)
        return failures, halt or result.error
    elif result.state == "INTERRUPTED" or (ctx.stop.is_set() and "TrialLimitExceeded" in (result.error or "")):
        records.fail_and_requeue(study, ctx, trial.number, trial.params, records.INTERRUPTED)
        records.kill_run(ctx, run_id, trial.number, records.INTERRUPTED, trial.params)
    else:
        trial.set_user_attr("error", result.error)
        study.tell(trial, state=TrialState.FAIL)
        return failures + 1, halt
    return failures, halt


def _stop_on_signals(stop: threading.Event) -> AbstractContextManager[None]:
    """Within the block, the first SIGTERM or SIGINT sets `stop`; a second one interrupts at once."""

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    return handling(handle, signal.SIGTERM, signal.SIGINT)


def run(cfg: Config, runner: Future | None = None) -> dict:
    """Run the tune flow (the CLI's `tune`) on `runner` (`runners.starting.start_runner`'s future; else one started here).

    A new study (new data or config) is warm-started from the previous study's best trials as
    `schedule.warm_start_top_k` says; `schedule.on_same_data` is left to the pipeline flow.
    """
    require_prepared(cfg.paths.prepared)
    cfg = plan_run(cfg, file_md5(cfg.paths.prepared), same_data_rule=False).cfg
    with nullcontext(runner) if runner else start_runner(cfg) as runner:  # its workers start while the inputs are checked
        version = tune_inputs(cfg)  # bad input refused before the flow run: one paragraph, no flow run failing with its traceback
        return tune_flow.with_options(task_runner=task_runner(cfg))(cfg, version, runner)
