"""The part of a trial that runs on the runner (a worker process, a thread or a Dask worker): evaluate, save the model.

It never raises for a failing or pruned trial: it returns a `JobResult`, a small picklable record
the trial task turns into MLflow calls in the flow's process. The model never crosses over: the job
writes it as an MLflow model folder into the trial's run (its artifact folder, or uploaded to a tracking server).
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from hosts.resources import default_threads
from modelio.mlflow_models import MODEL_ARTIFACT, save_model
from runners.base import local_path
from stageio.files import write_failure
from studies.storage import build_storage
from tracking.store import client_for
from tunedag.config import Config
from tunedag.data import load_prepared
from tunedag.objective import Reporter, TrialPruned, evaluate
from tunedag.samplers import build_pruner
from tunedag.selection import score_prefix


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs for one trial: references and parameters, no data."""

    cfg: Config  # the prepared data is cfg.paths.prepared
    data_version: str
    study_name: str
    trial_id: int
    number: int
    params: dict[str, Any]
    prune: bool
    model_dir: str  # the run's local artifact folder for the model, or runs:/<run id>/model on a tracking server


@dataclass
class JobResult:
    """What came of a trial: its state, values and series to log (a COMPLETE trial's model is in its run already)."""

    state: str  # COMPLETE, PRUNED, FAIL; UNRECORDED (the model or run could not be written) or INTERRUPTED: re-queued
    values: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=dict)
    pruned_at: int | None = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0  # the trial's time, as its task measured it


def run_job(job: TrialJob) -> JobResult:
    """Evaluate the configuration and save its model; any exception (a model that cannot be saved too) becomes FAIL.

    A COMPLETE result has its model folder written (unless a `train_fn` returned no model).
    """
    metric = job.cfg.tune.metric
    by_step = f"{score_prefix(job.cfg.data.cv_folds)}_{metric}_by_step"  # cv_ or val_, as the trial's scores
    try:
        torch, threads = sys.modules.get("torch"), default_threads(job.cfg.tune.parallelism, job.cfg.tune.threads_per_trial)
        if torch is not None and torch.get_num_threads() != threads:  # torch imported by a trial gets the worker's cap too
            torch.set_num_threads(threads)
        outcome = evaluate(
            job.cfg,
            load_prepared(local_path(job.cfg.paths.prepared), job.data_version),
            job.params,
            _reporter(job) if job.prune else None,
        )
        steps = {f"fold_{metric}": outcome.fold_values, by_step: outcome.intermediate, **_epochs(outcome.curves)}
        if outcome.model is not None:  # a train_fn may return none
            _save_model(job, outcome.model)
        return JobResult("COMPLETE", outcome.values, outcome.metrics, {k: v for k, v in steps.items() if v})
    except TrialPruned as pruned:
        steps = {by_step: pruned.intermediate, **_epochs(pruned.curves or {})}
        return JobResult("PRUNED", [pruned.intermediate[-1]], steps={k: v for k, v in steps.items() if v}, pruned_at=pruned.step)
    except Exception as exc:  # a failing trial must never stop the study
        if why := write_failure(exc):  # not the configuration's fault: the loop re-queues it and stops (UNRECORDED)
            return JobResult(
                "UNRECORDED",
                error=f"not recorded: the model could not be written: {why}",
                traceback=traceback.format_exc()[-5000:],
            )
        error, limit = f"{type(exc).__name__}: {exc}", job.cfg.tune.trial_memory_mb
        if isinstance(exc, MemoryError):
            error = "MemoryError: ran out of memory" + (f" (tune.trial_memory_mb {limit} MB)" if limit else "")
        return JobResult("FAIL", error=error, traceback=traceback.format_exc()[-5000:])


def _epochs(curves: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per-epoch series as `epoch_<name>`, apart from the trial's final `cv_<metric>` or `val_<metric>` scores."""
    return {f"epoch_{name}": series for name, series in curves.items()}


def _save_model(job: TrialJob, model: Any) -> None:
    """Write the model's folder (`modelio.mlflow_models.save_model`) into the trial's run at `job.model_dir`."""
    if not job.model_dir.startswith("runs:/"):
        return save_model(model, Path(job.model_dir), job.cfg.model.trusted_types)
    with tempfile.TemporaryDirectory(prefix=f"tunedag-trial-{job.number}-") as folder:  # a tracking server: no shared disk
        save_model(model, Path(folder) / MODEL_ARTIFACT, job.cfg.model.trusted_types)
        client_for(job.cfg.tracking.uri).log_artifacts(job.model_dir.split("/")[1], folder)


_STUDIES: dict[tuple[str, str], optuna.Study] = {}  # loaded once per worker (the journal is replayed once)


def _reporter(job: TrialJob) -> Reporter:
    """Report intermediate values to the trial in the shared storage; answer whether to stop."""
    key = (job.cfg.tune.storage, job.study_name)
    if key not in _STUDIES:
        storage = build_storage(key[0], job.cfg.tune.journal_sync)
        _STUDIES[key] = optuna.load_study(study_name=job.study_name, storage=storage, pruner=build_pruner(job.cfg))
    trial = optuna.Trial(_STUDIES[key], job.trial_id)

    def report(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return report
