"""The part of a trial that runs on the runner (a worker process, a thread or a Dask worker): evaluate, save the model.

It never raises for a failing or pruned trial: it returns a `JobResult`, a small picklable record
the trial task turns into MLflow calls in the flow's process. Only the model files cross over, as
an MLflow model folder on disk (the run's own artifact folder when the store is local), never as pickles.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna

from modelio.trust import skops_trusted_types
from runners.base import default_threads, local_path
from studies.storage import build_storage
from tasks.tracking import MODEL_ARTIFACT, client_for, save_sklearn_model, save_torch_model
from tunedag.config import Config
from tunedag.data import load_prepared
from tunedag.objective import Reporter, TrialPruned, evaluate
from tunedag.samplers import build_pruner


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs for one trial: references and parameters, no data."""

    cfg: Config
    data_path: Path
    data_version: str
    study_name: str
    trial_id: int
    number: int
    params: dict[str, Any]
    prune: bool
    model_dir: str | None = None  # where to write the model folder (the run's local artifact folder); None: a temporary one


@dataclass
class JobResult:
    """What came of a trial: its state, values, series to log, and where its model files are."""

    state: str  # COMPLETE, PRUNED or FAIL
    values: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=dict)
    pruned_at: int | None = None
    error: str | None = None
    traceback: str | None = None
    model_dir: str | None = None
    in_place: bool = False  # model_dir is the run's own artifact folder: nothing to upload or delete


def run_job(job: TrialJob) -> JobResult:
    """Evaluate the configuration and save its model; any exception (a model that cannot be saved too) becomes FAIL.

    A COMPLETE result has its model folder written (unless a `train_fn` returned no model).
    """
    metric = job.cfg.tune.metric
    try:
        _match_torch_threads(job.cfg)
        reporter = _reporter(job) if job.prune else None
        outcome = evaluate(job.cfg, load_prepared(local_path(job.data_path), job.data_version), job.params, reporter)
        steps = {f"fold_{metric}": outcome.fold_values, f"val_{metric}_by_step": outcome.intermediate, **_epochs(outcome.curves)}
        scored = JobResult("COMPLETE", outcome.values, outcome.metrics, {k: v for k, v in steps.items() if v})
        if outcome.model is None:  # a train_fn may return none
            return scored
        trusted = _skops_types(outcome.model, job.cfg.model.trusted_types)  # refuses unreviewed types
        model_dir = _save_model(job, outcome.model, trusted)
        if job.model_dir and job.model_dir.startswith("runs:/"):  # a tracking server: the worker uploads, no shared disk
            client_for(job.cfg.tracking.uri).log_artifacts(job.model_dir.split("/")[1], model_dir, MODEL_ARTIFACT)
            shutil.rmtree(Path(model_dir).parent, ignore_errors=True)
        return replace(scored, model_dir=model_dir, in_place=bool(job.model_dir))
    except TrialPruned as pruned:
        steps = {f"val_{metric}_by_step": pruned.intermediate, **_epochs(pruned.curves or {})}
        return JobResult("PRUNED", [pruned.intermediate[-1]], steps={k: v for k, v in steps.items() if v}, pruned_at=pruned.step)
    except MemoryError:
        limit = job.cfg.tune.trial_memory_mb
        why = f"ran out of memory (tune.trial_memory_mb {limit} MB)" if limit else "ran out of memory"
        return JobResult("FAIL", error=f"MemoryError: {why}", traceback=traceback.format_exc()[-5000:])
    except Exception as exc:  # a failing trial must never stop the study
        return JobResult("FAIL", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-5000:])


def _epochs(curves: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per-epoch series as `epoch_<name>`, apart from the trial's final `val_<metric>` scores."""
    return {f"epoch_{name}": series for name, series in curves.items()}


def discard(result: JobResult) -> None:
    """Delete a trial's temporary model folder (one written in place belongs to its MLflow run)."""
    if result.model_dir and not result.in_place:
        shutil.rmtree(Path(result.model_dir).parent, ignore_errors=True)


def _save_model(job: TrialJob, model: Any, trusted: list[str] | None) -> str:
    """Write the model as an MLflow model folder: PyTorch for networks, scikit-learn (skops) otherwise.

    Into `job.model_dir` when the trial task gave one (the run's local artifact folder), else into a temporary folder that the task uploads and deletes.
    """
    folder = (
        Path(job.model_dir)
        if job.model_dir and not job.model_dir.startswith("runs:/")
        else Path(tempfile.mkdtemp(prefix=f"tunedag-trial-{job.number}-")) / MODEL_ARTIFACT
    )
    if trusted is None:
        save_torch_model(model, folder)
    else:
        _save_sklearn(model, folder, trusted, job.cfg.model.trusted_types)
    return str(folder)


_TRUSTED: dict[str, list[str]] = {}  # per estimator and model.trusted_types: the reviewed skops types seen in this worker


def _skops_types(model: Any, extra: list[str]) -> list[str] | None:
    """The skops types to trust for a scikit-learn model (None for a network), remembered per estimator.

    Finding a model's types takes one more serialisation, so it is done for an estimator's first
    model only; `skops_trusted_types` refuses unreviewed types then (the trial fails with why).
    """
    if "tunedag.nets" in sys.modules and sys.modules["tunedag.nets"].is_torch_model(model):
        return None
    key = _estimator_key(model, extra)
    if key not in _TRUSTED:
        _TRUSTED[key] = skops_trusted_types(model, extra)
    return _TRUSTED[key]


def _save_sklearn(model: Any, folder: Path, trusted: list[str], extra: list[str]) -> None:
    """Save with the remembered types; when this model holds more, look them up and save again.

    MLflow loads the file back with the list given and refuses one that needs a type beyond it.
    """
    from mlflow.exceptions import MlflowException

    try:
        return save_sklearn_model(model, folder, trusted)
    except MlflowException as exc:
        if "untrusted types" not in str(exc):
            raise
        shutil.rmtree(folder, ignore_errors=True)
    key = _estimator_key(model, extra)
    _TRUSTED[key] = sorted(set(trusted) | set(skops_trusted_types(model, extra)))
    save_sklearn_model(model, folder, _TRUSTED[key])


def _estimator_key(model: Any, extra: list[str]) -> str:
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    return f"{type(estimator).__module__}.{type(estimator).__qualname__} {sorted(extra)}"


_STUDIES: dict[tuple[str, str], optuna.Study] = {}


def _study(job: TrialJob) -> optuna.Study:
    """The study in this process, loaded once (the journal is replayed once per worker)."""
    key = (job.cfg.tune.storage, job.study_name)
    if key not in _STUDIES:
        storage = build_storage(key[0], job.cfg.tune.journal_sync)
        _STUDIES[key] = optuna.load_study(study_name=job.study_name, storage=storage, pruner=build_pruner(job.cfg))
    return _STUDIES[key]


def _reporter(job: TrialJob) -> Reporter:
    """Report intermediate values to the trial in the shared storage; answer whether to stop."""
    trial = optuna.Trial(_study(job), job.trial_id)

    def report(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return report


def _match_torch_threads(cfg: Config) -> None:
    """torch, imported by a trial after the worker started, gets the worker's thread cap too."""
    torch = sys.modules.get("torch")
    threads = default_threads(cfg.tune.parallelism, cfg.tune.threads_per_trial)
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
