"""A worker that joins a study `tune` started, from another process or machine, sharing its `tune.n_trials` budget.

Any number run with the same params.yaml (on other machines: a PostgreSQL `tune.storage`, an MLflow server `tracking.uri`).
"""

from __future__ import annotations

from concurrent.futures import Future
from contextlib import nullcontext

from prefect import flow

from flows._inputs import tune_inputs
from flows.tune import drive_trials, task_runner
from runners.starting import start_runner
from studies.storage import PARENT_RUN_ATTR, close_study, join_study
from tracking.provenance import lineage_tags
from tracking.store import open_tracker
from trials.records import TrialContext
from trials.recovery import recover_orphan_trials
from tunedag.config import Config
from tunedag.errors import TunedagError


@flow(name="tune-worker")
def worker_flow(cfg: Config, runner: Future | None = None) -> str:
    """Run trials of the existing study until its global budget is used; return why it stopped."""
    data_version = tune_inputs(cfg)
    tracker = open_tracker(cfg.tracking, create=False)
    study = join_study(cfg, data_version)
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent is None:
        raise TunedagError(f"Study {study.study_name} has no pipeline run yet; start it with `tunedag tune` first.")
    ctx = TrialContext(
        cfg, data_version, tracker.experiment_id, parent, study.study_name, lineage_tags(study.study_name, data_version)
    )
    recover_orphan_trials(study, ctx)  # trials of dead processes: told from their runs, or failed and re-queued
    try:
        return drive_trials(study, ctx, runner)
    finally:
        close_study(study)


def run(cfg: Config, runner: Future | None = None) -> str:
    """Run the worker flow (the CLI's `worker`) on `runner` (`runners.starting.start_runner`'s future; else one started here)."""
    with nullcontext(runner) if runner else start_runner(cfg) as runner:
        return worker_flow.with_options(task_runner=task_runner(cfg))(cfg, runner)
