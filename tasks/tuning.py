"""The trial as a Prefect task: run its job on the runner, then write its MLflow run (trials.records)."""

from __future__ import annotations

import time
from dataclasses import replace

from prefect import task
from prefect.cache_policies import NO_CACHE

from runners import TrialLimitExceeded
from tracking.runs import close_unrecorded
from trials.job import JobResult, TrialJob, run_job
from trials.records import INTERRUPTED, TrialContext, record


@task(cache_policy=NO_CACHE, task_run_name="trial-{job.number}")
def run_trial(ctx: TrialContext, job: TrialJob, run_id: str) -> JobResult:
    """Run the trial's job on the runner, then write its MLflow run in full and close it; never raises.

    A run that cannot be written comes back UNRECORDED (the loop fails and re-queues the trial: never COMPLETE
    without its run); a trial stopped by the loop's interruption comes back INTERRUPTED, unwritten.
    """
    started = time.perf_counter()
    try:
        result = ctx.runner.submit(run_job, job).result()
    except (TrialLimitExceeded, RuntimeError) as exc:  # RuntimeError: the loop's stop closed the runner before this submit
        result = JobResult("FAIL", error=f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    try:
        if ctx.stop.is_set() and result.state == "FAIL":  # killed by the stop, or failing as it came
            return JobResult("INTERRUPTED", error=INTERRUPTED, seconds=seconds)
        record(ctx.tracker().client, run_id, job, result, seconds)
    except Exception as exc:  # the tracking store failed: Optuna must not hold a trial MLflow lacks
        return JobResult("UNRECORDED", error=close_unrecorded(ctx.tracker().client, run_id, exc), seconds=seconds)
    return replace(result, seconds=seconds)
