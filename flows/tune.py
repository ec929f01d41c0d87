"""Stage 2: run the Optuna study, one Prefect task per trial, the flow driving ask/tell."""

from __future__ import annotations

import math
import time

import optuna
from optuna.trial import TrialState
from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.reports import summarise_study
from tasks.tracking import TAG_ROLE, log_values, open_tracker, start_run
from tasks.tuning import TrialContext, TrialResult, close_stale_parents, lineage_tags, reconcile_trials, run_trial
from tunedag.config import Config
from tunedag.data import SPLIT, file_md5, load_prepared
from tunedag.errors import TunedagError
from tunedag.estimators import check_estimator_for_task
from tunedag.metrics import check_metric_for_task
from tunedag.space import distributions, grid
from tunedag.study import count_finished, grid_points_left, open_study, recover_orphans


@flow(name="tune")
def tune_flow(cfg: Config) -> dict:
    """Tune until the study holds `tune.n_trials` finished trials; return the study summary."""
    data_version = _check_inputs(cfg)
    tracker = open_tracker(cfg.tracking)
    study = open_study(cfg, data_version)
    close_stale_parents(tracker, study.study_name)
    tags = lineage_tags(study.study_name, data_version)
    parent = start_run(tracker, f"pipeline-{study.study_name}", {**tags, TAG_ROLE: "pipeline"})
    try:
        log_values(tracker.client, parent, params=_run_params(cfg))
        orphans = [t.number for t in recover_orphans(study, cfg.search_space)]
        reconcile_trials(tracker, study, orphans, parent, tags)
        ctx = TrialContext(cfg, cfg.paths.prepared, data_version, tracker.experiment_id, parent, study.study_name, tags)
        drive_trials(study, ctx)
        if count_finished(study) == 0:
            raise TunedagError(f"No trial of study {study.study_name} completed; see the tunedag.error tag on the trial runs in MLflow.")
        summary = summarise_study(cfg, study, tracker, parent, data_version)
    except BaseException as exc:
        tracker.client.set_terminated(parent, status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    tracker.client.set_terminated(parent, status="FINISHED")
    return summary


def _check_inputs(cfg: Config) -> str:
    """Refuse what cannot work before anything is written; return the data version."""
    if not cfg.paths.prepared.is_file():
        raise TunedagError(f"Prepared dataset {cfg.paths.prepared} (paths.prepared) is missing; run the prepare stage first (dvc repro prepare).")
    version = file_md5(cfg.paths.prepared)
    prep = load_prepared(cfg.paths.prepared, version)
    check_metric_for_task(cfg.tune.metric, prep.task)
    check_estimator_for_task(cfg.model.estimator, cfg.model.fixed, prep.task)
    if cfg.tune.sampler == "grid":
        grid(cfg.search_space)
    if cfg.data.cv_folds == 0 and not (prep.frame[SPLIT] == "val").any():
        raise TunedagError(f"{cfg.paths.prepared} has no validation rows; set data.val_size above 0 or data.cv_folds to 2 or more.")
    return version


def _run_params(cfg: Config) -> dict:
    return {"seed": cfg.seed, "estimator": cfg.model.estimator, "sampler": cfg.tune.sampler,
            "n_trials": cfg.tune.n_trials, "metric": cfg.tune.metric, "parallelism": cfg.tune.parallelism,
            "cv_folds": cfg.data.cv_folds, "data_source": cfg.data.source}


def drive_trials(study: optuna.Study, ctx: TrialContext) -> list[TrialResult]:
    """Ask, submit up to `parallelism` trial tasks, tell each result as it lands; stop at the budget."""
    tune, logger = ctx.cfg.tune, get_run_logger()
    space = distributions(ctx.cfg.search_space)
    deadline = time.monotonic() + tune.timeout if tune.timeout else math.inf
    finished, failures, pending, results = count_finished(study), 0, {}, []

    def can_launch() -> bool:
        within_grid = tune.sampler != "grid" or grid_points_left(study, ctx.cfg.search_space) > 0
        return (finished + len(pending) < tune.n_trials and failures <= tune.max_failed_trials
                and time.monotonic() < deadline and within_grid)

    while True:
        while len(pending) < tune.parallelism and can_launch():
            trial = study.ask(space)
            pending[run_trial.submit(ctx, trial.number, trial.params)] = trial
        if not pending:
            break
        future = next(as_completed(list(pending)))
        trial, result = pending.pop(future), future.result()
        trial.set_user_attr("mlflow_run_id", result.run_id)
        if result.state == "COMPLETE":
            study.tell(trial, result.value)
            finished += 1
        else:
            trial.set_user_attr("error", result.error)
            study.tell(trial, state=TrialState.FAIL)
            failures += 1
        results.append(result)
        logger.info("trial %d %s %s in %.2fs [%d/%d finished]", result.number, result.state,
                    f"{tune.metric}={result.value:.5g}" if result.value is not None else result.error,
                    result.seconds, finished, tune.n_trials)
    if failures > tune.max_failed_trials:
        logger.warning("stopped launching trials after %d failures (tune.max_failed_trials=%d)", failures, tune.max_failed_trials)
    return results


def run(cfg: Config) -> dict:
    """Run the tune flow with `tune.parallelism` worker threads."""
    return tune_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=cfg.tune.parallelism))(cfg)


if __name__ == "__main__":
    from flows._cli import main

    raise SystemExit(main(run, __doc__))
