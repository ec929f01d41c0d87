"""Stage 2: run the Optuna study, one Prefect task per trial, the flow driving ask/tell."""

from __future__ import annotations

if __name__ == "__main__":  # a stage command: Prefect's temporary server and the trial workers start now, beside the imports below
    from flows._cli import parse_args, start_stage

    start_stage(__spec__.name, **vars(parse_args(__doc__)))

import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from prefect import flow, get_run_logger
from prefect.exceptions import TerminationSignal
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from tasks.pool import executor_for, prestart
from tasks.reports import summarise_study
from tasks.tracking import TAG_ROLE, TAG_TRIAL, Tracker, client_for, log_values, open_tracker, preload_store, start_run
from tasks.trial_worker import TrialJob
from tasks.tuning import (LaunchedTrial, TrialContext, TrialResult, clear_staging, close_stale_parents, drain_recorder,
                          launch_trial, lineage_tags, reconcile_trials, recover_orphan_trials, run_trial)
from tunedag.executor import close_executors
from tunedag.config import Config
from tunedag.data import SPLIT, file_md5, load_prepared, require_prepared
from tunedag.errors import TunedagError
from tunedag.estimators import check_estimator_for_task
from tunedag.metrics import METRICS, check_metric_for_task
from tunedag.report import format_progress
from tunedag.retune import plan_run
from tunedag.seeding import check_warm_start_source, enqueue_manual, warm_start
from tunedag.samplers import build_sampler
from tunedag.space import check_configuration, suggest
from tunedag.stopping import StopRules
from tunedag.study import (
    HEARTBEAT_S,
    PARENT_RUN_ATTR,
    beat,
    claim,
    close_study,
    grid_points_left,
    open_study,
    recover_orphans,
    tally,
)


@flow(name="tune")
def tune_flow(cfg: Config, checked_version: str | None = None) -> dict:
    """Tune until the study holds `tune.n_trials` finished trials (or a stop rule fires); return the summary.

    `checked_version`: the caller has checked the inputs (`_check_inputs`) and this is the data version it returned.
    """
    data_version = checked_version or _check_inputs(cfg)
    prestart(cfg)  # the worker processes start while the stores open (a no-op when `run` started them)
    tracker = open_tracker(cfg.tracking)
    study = open_study(cfg, data_version)
    close_stale_parents(tracker, study.study_name)
    clear_staging(tracker, cfg.tracking.uri)
    tags = lineage_tags(study.study_name, data_version)
    parent = start_run(tracker, f"pipeline-{study.study_name}", {**tags, TAG_ROLE: "pipeline"})
    study.set_user_attr(PARENT_RUN_ATTR, parent)  # where workers that join the study nest their trials
    try:
        log_values(tracker.client, parent, params=_run_params(cfg))
        orphans = [t.number for t in recover_orphans(study, cfg.families)]
        reconcile_trials(tracker, study, orphans, parent, tags)
        warm = warm_start(study, cfg)
        enqueue_manual(study, cfg)
        if warm:
            log_values(tracker.client, parent, tags={"tunedag.warm_start_from": cfg.tune.warm_start.study,
                                                     "tunedag.warm_start_trials": ",".join(map(str, warm))})
        reason = drive_trials(study, trial_context(cfg, data_version, tracker, parent, study.study_name, tags))
        log_values(tracker.client, parent, tags={"tunedag.stop_reason": reason})
        if tally(study).complete == 0:
            raise TunedagError(f"No trial of study {study.study_name} completed; see the tunedag.error tag on the trial runs in MLflow.")
        summary = summarise_study(cfg, study, tracker, parent, data_version)
    except BaseException as exc:
        stopped = isinstance(exc, (KeyboardInterrupt, TerminationSignal))
        tracker.client.set_terminated(parent, status="KILLED" if stopped else "FAILED")
        raise
    finally:
        close_executors()
        close_study(study)
    tracker.client.set_terminated(parent, status="FINISHED")
    return summary


def trial_context(cfg: Config, data_version: str, tracker: Tracker, parent: str, study_name: str, tags: dict) -> TrialContext:
    """What each trial task gets; inside Dask workers (their own processes) trials run in the task's thread.

    Trial tasks in this process write finished trials to MLflow from a recorder thread
    (`record_async`), which `drive_trials` drains; Dask workers, other processes, write before returning.
    """
    local = cfg.tune.runner.kind != "dask"
    executor = cfg.tune.executor if local else "thread"
    return TrialContext(cfg, cfg.paths.prepared, data_version, tracker.experiment_id, parent, study_name, tags, executor,
                        record_async=local)


def task_runner(cfg: Config):
    """Prefect's task runner for the trial tasks: threads here, or a Dask cluster (prefect-dask)."""
    if cfg.tune.runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.tune.runner.address:
            return DaskTaskRunner(address=cfg.tune.runner.address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": cfg.tune.parallelism, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None, "host": "127.0.0.1"})
    # Twice the trials in flight: a told trial's task run may still be ending when the next one starts.
    return ThreadPoolTaskRunner(max_workers=2 * cfg.tune.parallelism)


def _check_inputs(cfg: Config) -> str:
    """Refuse what cannot work before anything is written; return the data version."""
    require_prepared(cfg.paths.prepared)
    version = file_md5(cfg.paths.prepared)
    from tunedag.integrity import verify_tracked  # its only use in this module

    verify_tracked(cfg.paths.prepared, cfg, md5=version)  # corrupted since DVC recorded it: refused
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
    if cfg.data.cv_folds == 0 and not (prep.frame[SPLIT] == "val").any():
        raise TunedagError(f"{cfg.paths.prepared} has no validation rows; set data.val_size above 0 or data.cv_folds to 2 or more.")
    return version


def _run_params(cfg: Config) -> dict:
    return {"seed": cfg.seed, "estimator": cfg.model.estimator or ",".join(cfg.model.families),
            "sampler": cfg.tune.sampler.name, "pruner": cfg.tune.pruner.name, "fidelity": cfg.tune.fidelity.kind,
            "n_trials": cfg.tune.n_trials, "metric": cfg.tune.metric, "objectives": ",".join(cfg.tune.objectives),
            "parallelism": cfg.tune.parallelism, "cv_folds": cfg.data.cv_folds, "data_source": cfg.data.source}


def drive_trials(study: optuna.Study, ctx: TrialContext) -> str:
    """Ask, submit up to `parallelism` trial tasks, tell each result as it lands; return why it stopped.

    The budget is global: every worker on the study counts the others' running trials, and a
    trial asked beyond `n_trials` by a race between workers is failed as surplus before it runs.
    SIGTERM or Ctrl-C stops launching, lets running trials finish and be told, then raises
    KeyboardInterrupt: nothing is left half-recorded. A second signal stops at once.
    The counts come from one `tally` of the storage per question asked of it, not one scan per
    count, and MLflow writes of finished trials are drained before this returns or raises.
    Between a result and the next launch only the tell and the ask happen: a trial is claimed just
    after it is handed out, and the progress line of a told trial is written once the next runs.
    On the process executor in this process the loop hands each trial to its worker itself and
    tells it on the worker's answer; the trial's task run, submitted right after the launch, waits
    for that answer, records the trial and ends while the next trial runs (so Prefect's start and
    end of a task run are off the path from one trial to the next). The loop waits for every
    task run before it returns.
    """
    tune, logger = ctx.cfg.tune, get_run_logger()
    rules = StopRules(ctx.cfg)
    failures, pending, waiting = 0, {}, False
    prune = tune.fidelity.kind != "none" and len(tune.directions) == 1
    stop_rules = tune.target is not None or tune.patience is not None  # study_done reads the whole study

    def can_launch() -> bool:
        nonlocal waiting
        waiting = False
        if stop.requested:
            rules.reason = "interrupted"
            return False
        counts = tally(study)
        if counts.budget_left(tune.n_trials) <= 0:
            waiting = counts.finished < tune.n_trials  # other workers' trials still running
            rules.reason = None if waiting else f"n_trials {tune.n_trials} reached"
        elif failures > tune.max_failed_trials:
            rules.reason = f"{failures} failed trials (tune.max_failed_trials {tune.max_failed_trials})"
        elif tune.sampler.name == "grid" and grid_points_left(study, next(iter(ctx.cfg.families.values())).space) <= 0:
            rules.reason = "grid exhausted"
        elif tune.sampler.name == "manual" and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            rules.reason = "every tune.enqueue configuration evaluated"
        else:
            return not rules.out_of_time() and not (stop_rules and rules.study_done(study))
        return False

    executor_for(ctx.cfg, ctx.executor)  # start the worker processes before the first trial, not inside it
    launch_here = ctx.record_async and ctx.executor == "process"
    progress: list[str] = []  # lines for trials told, written once the next trial is launched
    task_runs: list[Any] = []  # trial task runs that may not have ended yet
    told: list[InFlight] = []  # told trials whose task runs wait to record them until the next trials are out
    try:
        with GracefulStop() as stop, Heartbeat(study, pending):
            while True:
                while len(pending) < tune.parallelism and can_launch():
                    trial = study.ask()
                    if tally(study).budget_left(tune.n_trials, trial.number) < 0:
                        _surplus(study, trial, ctx)
                        continue
                    params = suggest(trial, ctx.cfg.families)
                    job = TrialJob(ctx.cfg, ctx.data_path, ctx.data_version, study.study_name, trial._trial_id, trial.number, params, prune)
                    launched = launch_trial(ctx, job, held=True) if launch_here else None
                    task_run = run_trial.submit(*_task_args(ctx, job, launched))
                    pending[launched.early if launched else task_run] = InFlight(trial, launched, task_run)
                    task_runs = [t for t in task_runs if not t.wrapped_future.done()] + [task_run]
                    claim(trial)  # while it runs: an unclaimed trial is never taken for an orphan in its first 10 s
                _release(told)
                _write_progress(logger, progress)
                if not pending and waiting and not stop.requested:
                    time.sleep(1.0)  # the budget is held by other workers' running trials: wait for them
                    recover_orphan_trials(study, ctx)
                    continue
                if not pending:
                    break
                entry = pending.pop(_first_answer(pending))
                trial = entry.trial
                result = entry.launched.told() if entry.launched else entry.task_run.result()
                failures += result.state == "FAIL"
                _tell(study, trial, result)
                told.append(entry)
                counts = tally(study)
                progress.append(format_progress(result.number, result.state, result.value, counts.best,
                                                counts.finished, tune.n_trials, tune.metric, result.seconds, result.error))
        _release(told)
        _wait_for_task_runs(task_runs, logger)
    finally:
        _release(told + list(pending.values()))  # no task run is left waiting (a stop, an error)
        _write_progress(logger, progress)
        drain_recorder()  # every finished trial's run fully written before the flow goes on (or stops)
    if stop.requested:
        raise KeyboardInterrupt
    return rules.reason or "done"


@dataclass(frozen=True)
class InFlight:
    """A trial asked and handed out: its task run, and its launch when the loop launched it itself."""

    trial: optuna.Trial
    launched: LaunchedTrial | None
    task_run: Any  # a PrefectFuture


def _release(entries: list[InFlight]) -> None:
    """Let the task runs of these trials record them; empties the list."""
    for entry in entries:
        if entry.launched:
            entry.launched.release()
    entries.clear()


def _first_answer(pending: dict) -> Any:
    """The key of the first trial in `pending` to answer: its worker's answer, or its task run's end.

    A trial the loop launched is told on its worker's answer, while its task run records it
    and ends; trials run inside their task (a Dask worker, the thread executor) end with it.
    """
    answers = [key for key in pending if isinstance(key, Future)]
    if answers:
        return next(iter(wait(answers, return_when=FIRST_COMPLETED).done))
    return next(as_completed(list(pending)))


def _wait_for_task_runs(task_runs: list[Any], logger: Any) -> None:
    """Wait for the trial task runs told before they ended; warn of one that did not complete."""
    for task_run in task_runs:
        task_run.wait()
        if not task_run.state.is_completed():
            logger.warning("Trial task run %s ended %s", task_run.task_run_id, task_run.state.name)


def _write_progress(logger: Any, lines: list[str]) -> None:
    for line in lines:
        logger.info(line)
    lines.clear()


def _task_args(ctx: TrialContext, job: TrialJob, launched: LaunchedTrial | None) -> tuple:
    """The trial task's arguments; in this process wrapped so Prefect does not walk the config in them each trial.

    A Dask worker gets them plain: prefect-dask hands the wrapper itself to the task's run name.
    """
    if ctx.cfg.tune.runner.kind == "dask":
        return ctx, job
    return (quote(ctx), quote(job)) + ((quote(launched),) if launched else ())


def _surplus(study: optuna.Study, trial: optuna.Trial, ctx: TrialContext) -> None:
    """Give back a trial asked beyond the budget by a race between workers (re-queueing fixed parameters)."""
    fixed = study._storage.get_trial_system_attrs(trial._trial_id).get("fixed_params")
    trial.set_user_attr("error", "surplus: the trial budget was filled by other workers")
    study.tell(trial, state=TrialState.FAIL)
    if fixed:
        study.enqueue_trial(fixed, skip_if_exists=False)
    tracker = Tracker(client_for(ctx.cfg.tracking.uri), ctx.experiment_id)
    run_id = start_run(tracker, f"trial-{trial.number}", {**ctx.tags, TAG_TRIAL: str(trial.number), TAG_ROLE: "trial",
                                                          "tunedag.error": "not run: the trial budget was filled by other workers"}, ctx.parent_run_id)
    tracker.client.set_terminated(run_id, status="KILLED")


class Heartbeat:
    """Within the block, a daemon thread refreshes the heartbeat of the trials in `pending`."""

    def __init__(self, study: optuna.Study, pending: dict):
        self._study, self._pending, self._stop = study, pending, threading.Event()

    def __enter__(self) -> Heartbeat:
        threading.Thread(target=self._run, name="tunedag-heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            beat(self._study, [entry.trial._trial_id for entry in list(self._pending.values())])


class GracefulStop:
    """Within the block, the first SIGTERM or SIGINT only sets `requested`; a second one interrupts."""

    requested = False

    def __enter__(self) -> GracefulStop:
        main = threading.current_thread() is threading.main_thread()  # handlers can only be set there
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def _tell(study: optuna.Study, trial: optuna.Trial, result: TrialResult) -> None:
    trial.set_user_attr("mlflow_run_id", result.run_id)
    if result.state == "COMPLETE":
        study.tell(trial, result.values)
    elif result.state == "PRUNED":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        trial.set_user_attr("error", result.error)
        study.tell(trial, state=TrialState.FAIL)


def warm_up(cfg: Config) -> None:
    """What the command starts before it waits for Prefect's temporary server (the workers started earlier)."""
    preload_store(cfg.tracking.uri)


def run(cfg: Config) -> dict:
    """Run the tune flow with the task runner `tune.runner` names.

    A new study (new data or config) is warm-started from the previous study's best trials as
    `schedule.warm_start_top_k` says; `schedule.on_same_data` is left to the pipeline flow.
    """
    require_prepared(cfg.paths.prepared)
    cfg = plan_run(cfg, file_md5(cfg.paths.prepared), same_data_rule=False).cfg
    prestart(cfg)  # the worker processes start beside Prefect's temporary server
    version = _check_inputs(cfg)  # bad input refused before the flow run: one paragraph, no flow run failing with its traceback
    return tune_flow.with_options(task_runner=task_runner(cfg))(cfg, version)


if __name__ == "__main__":
    from flows._cli import main

    raise SystemExit(main(run, __doc__, warm_up=warm_up))
