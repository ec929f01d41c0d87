"""MLflow bookkeeping through `MlflowClient` with explicit run ids (safe from worker threads)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from tunedag.config import TrackingConfig
from tunedag.errors import TunedagError, redact  # noqa: F401  (redact is part of this module's interface)

TAG_STUDY = "studies.storage"
TAG_TRIAL = "tunedag.trial"
TAG_ROLE = "tunedag.role"
TAG_STATE = "tunedag.state"
TAG_DATA_VERSION = "tunedag.data_version"
TAG_GIT = "tunedag.git_commit"
TAG_FLOW_RUN = "tunedag.prefect_flow_run_id"
MODEL_ARTIFACT = "model"
# MLflow 3's mark of a model-training experiment: its UI lists it under Model training and never asks its kind.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


@dataclass(frozen=True)
class Tracker:
    """A client bound to the experiment every run of this pipeline goes to."""

    client: MlflowClient
    experiment_id: str


def open_tracker(cfg: TrackingConfig, create: bool = True) -> Tracker:
    """Connect to the store and get or create the experiment, once, before any worker starts.

    A tracking server that does not answer fails here, fast, before any trial runs. With
    `create=False` (a worker joining a study) the experiment must exist already.
    """
    remote = cfg.uri.startswith(("http://", "https://"))
    if remote:
        _check_server(cfg.uri)
    elif cfg.uri.startswith("sqlite:///"):
        Path(cfg.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = client_for(cfg.uri)
    try:
        exp = client.get_experiment_by_name(cfg.experiment)
        if cfg.uri.startswith("sqlite:///"):
            _write_ahead_log(Path(absolute_uri(cfg.uri).removeprefix("sqlite:///")))
        if exp is not None:
            if create and EXPERIMENT_KIND[0] not in exp.tags:  # an experiment created before tunedag set its kind
                client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
            return Tracker(client, exp.experiment_id)
        if not create:
            raise TunedagError(
                f"MLflow experiment {cfg.experiment!r} (tracking.experiment) does not exist at {redact(cfg.uri)}; "
                "start the study with `python -m flows.tune` before starting workers."
            )
        # A server stores artifacts where it was told to; the embedded store keeps them under mlruns/.
        location = None if remote else (Path(cfg.artifact_root).resolve() / cfg.experiment).as_uri()
        return Tracker(client, client.create_experiment(cfg.experiment, artifact_location=location, tags=dict([EXPERIMENT_KIND])))
    except MlflowException as exc:
        raise TunedagError(f"MLflow tracking at {redact(cfg.uri)} (tracking.uri) cannot be used: {exc.message}") from None


def _write_ahead_log(db: Path) -> None:
    """Switch the SQLite store to write-ahead logging (kept in the file; a no-op once it is on).

    Each MLflow write then costs one sync of the log instead of a rollback journal's several,
    which cuts a trial's tracking writes by about a third here, and readers (the UI) no longer
    block the writer. It needs the store on a local disk, as the embedded store is.
    """
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=10) as con:
            con.execute("PRAGMA journal_mode=WAL").fetchall()
        con.close()
    except sqlite3.Error:  # locked by another writer or read-only: it stays in its journal mode, which also works
        pass


def _check_server(uri: str, timeout_s: float = 5.0) -> None:
    import base64
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/health")
    if parts.username:  # urllib does not take credentials from the URL; MLflow's client sends them as basic auth
        user, password = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        urllib.request.urlopen(request, timeout=timeout_s).close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TunedagError(
            f"The MLflow tracking server at {redact(uri)} (tracking.uri) does not answer ({reason}); "
            "start it (mlflow server ...) or point tracking.uri at the local store sqlite:///mlruns/mlflow.db."
        ) from None


_CLIENT_LOCK = threading.Lock()


def client_for(uri: str) -> MlflowClient:
    """A client for `uri`, one per absolute store location and process (threads asking at once share it)."""
    with _CLIENT_LOCK:  # a first client creates the SQLite store: two threads must not do it at once
        return _client(absolute_uri(uri))


def absolute_uri(uri: str) -> str:
    """A relative `sqlite:///path` made absolute, so a cached client never follows the working directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


@lru_cache(maxsize=8)
def _client(uri: str) -> MlflowClient:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bar among the pipeline's log lines
    if redact(uri) != uri:  # MLflow prints run links built from the tracking URI, password included
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def start_run(tracker: Tracker, name: str, tags: dict[str, str], parent_id: str | None = None) -> str:
    """Create a run (nested under `parent_id` when given) and return its id."""
    return create_run(tracker, name, tags, parent_id).info.run_id


def create_run(tracker: Tracker, name: str, tags: dict[str, str], parent_id: str | None = None) -> Any:
    """Create a run as `start_run` does and return the MLflow `Run` (its id and artifact URI)."""
    tags = {MLFLOW_RUN_NAME: name, **tags}
    if parent_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_id
    return tracker.client.create_run(tracker.experiment_id, run_name=name, tags=tags)


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts when the store keeps them on this machine's disk, else None."""
    if artifact_uri.startswith("file:"):
        from mlflow.utils.file_utils import local_file_uri_to_path

        return Path(local_file_uri_to_path(artifact_uri))
    if "://" not in artifact_uri and ":" not in artifact_uri.split("/", 1)[0] and Path(artifact_uri).is_absolute():
        return Path(artifact_uri)
    return None


def log_values(
    client: MlflowClient,
    run_id: str,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    steps: dict[str, list[float]] | None = None,
    first_step: int = 0,
) -> None:
    """Log params, metrics (each series in `steps` from `first_step` on) and tags in one batched call."""
    now = int(time.time() * 1000)
    metric_rows = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
    for key, series in (steps or {}).items():
        metric_rows += [Metric(key, float(v), now, i) for i, v in enumerate(series, first_step)]
    client.log_batch(
        run_id,
        metrics=metric_rows,
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


_REQUIREMENTS_CHECKED: set[tuple[str, ...]] = set()


def _check_requirements_once() -> None:
    """Let MLflow compare a model's explicit requirements with the installed packages once per process.

    `save_model` runs that comparison on every call (reading package metadata: about 60% of a
    small model's save time); the answer cannot change while the process runs, so later calls
    with requirements already checked skip it. MLflow still warns, once, on a mismatch.
    """
    import mlflow.utils.environment as env

    check = env.warn_dependency_requirement_mismatches
    if getattr(check, "tunedag_once", False):
        return

    def once(model_requirements: list[str]) -> None:
        key = tuple(model_requirements)
        if key not in _REQUIREMENTS_CHECKED:
            check(model_requirements)
            _REQUIREMENTS_CHECKED.add(key)

    once.tunedag_once = True  # type: ignore[attr-defined]
    env.warn_dependency_requirement_mismatches = once


@lru_cache(maxsize=1)
def pip_requirements() -> tuple[str, ...]:
    """Explicit requirements, so model logging skips MLflow's slow inference subprocess."""
    names = ("scikit-learn", "skops", "numpy", "scipy", "pandas")
    return tuple(f"{n}=={version(n)}" for n in names)


def save_sklearn_model(model: Any, path: Path, trusted_types: list[str], signature: Any = None) -> None:
    """Write `model` as an MLflow sklearn model (skops format) at `path`."""
    import mlflow.sklearn

    import modelio.skops_io  # noqa: F401  (skops without its torch import, before MLflow imports it)

    _check_requirements_once()

    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=trusted_types,
        pip_requirements=list(pip_requirements()),
        signature=signature,
    )


def log_sklearn_model(client: MlflowClient, run_id: str, model: Any, trusted_types: list[str]) -> None:
    """Save `model` and upload it as the run's `model` artifact (loadable with mlflow.pyfunc)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_ARTIFACT
        save_sklearn_model(model, path, trusted_types)
        client.log_artifacts(run_id, str(path), MODEL_ARTIFACT)


def save_torch_model(model: Any, path: Path, signature: Any = None, input_example: Any = None) -> None:
    """Write a fitted torch pipeline (tunedag.nets) as an MLflow PyTorch model at `path`.

    The network travels with its fitted imputation and scaling as one module exported with
    `torch.export` (MLflow's "pt2" format: a graph and tensors, no pickle, no tunedag needed to load).
    `mlflow.pyfunc.load_model(path).predict(features)` takes the raw feature columns as float64 (a
    DataFrame or array, as the prepared data holds them; MLflow checks the dtype) and returns class probabilities (one column per class, in the order of the `classes` metadata) for
    a classifier, predictions for a regressor; `load_torch_model` gives labels too.

    Args:
        input_example: a few feature rows to trace with (zeros when None).
        signature: a tensor-based signature; inferred from the example when None.
    """
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    from tunedag.nets import to_inference_module, torch_estimator

    module, est = to_inference_module(model), torch_estimator(model)
    n_features = getattr(model, "n_features_in_", est.n_features_in_)
    example = np.zeros((2, n_features)) if input_example is None else np.array(input_example, np.float64)[:20].copy()
    example = np.concatenate([example, example]) if len(example) < 2 else example  # a batch of 1 would fix the size
    with torch.no_grad():
        out = module(torch.from_numpy(example)).numpy()
    classes = getattr(est, "classes_", None)
    metadata = {
        "tunedag_task": "classification" if classes is not None else "regression",
        "classes": None if classes is None else classes.tolist(),
    }
    mlflow.pytorch.save_model(
        module,
        str(path),
        serialization_format="pt2",
        input_example=example,
        signature=signature or infer_signature(example, out),
        metadata=metadata,
        pip_requirements=[f"torch=={version('torch')}", f"numpy=={version('numpy')}"],
    )


def log_torch_model(client: MlflowClient, run_id: str, model: Any) -> None:
    """Save a fitted torch pipeline and upload it as the run's `model` artifact (loadable with mlflow.pyfunc)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_ARTIFACT
        save_torch_model(model, path)
        client.log_artifacts(run_id, str(path), MODEL_ARTIFACT)


def load_torch_model(path: Path | str) -> Any:
    """A saved torch model as a predictor with `predict` (labels), and `predict_proba` / `classes_` for a classifier."""
    import mlflow.pytorch
    from mlflow.models import Model

    from tunedag.nets import ExportedPredictor

    meta = Model.load(str(path)).metadata or {}
    return ExportedPredictor(mlflow.pytorch.load_model(str(path)), meta.get("classes"))


def find_runs(tracker: Tracker, filter_string: str) -> list[Any]:
    """Every run of the experiment matching an MLflow search filter (all pages)."""
    runs, token = [], None
    while True:
        page = tracker.client.search_runs([tracker.experiment_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
