"""MLflow bookkeeping through `MlflowClient` with explicit run ids (safe from worker threads)."""

from __future__ import annotations

import tempfile
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
from tunedag.errors import TunedagError

TAG_STUDY = "tunedag.study"
TAG_TRIAL = "tunedag.trial"
TAG_ROLE = "tunedag.role"
TAG_STATE = "tunedag.state"
TAG_DATA_VERSION = "tunedag.data_version"
TAG_GIT = "tunedag.git_commit"
TAG_FLOW_RUN = "tunedag.prefect_flow_run_id"
MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class Tracker:
    """A client bound to the experiment every run of this pipeline goes to."""

    client: MlflowClient
    experiment_id: str


def open_tracker(cfg: TrackingConfig) -> Tracker:
    """Connect to the store and get or create the experiment, once, before any worker starts.

    A tracking server that does not answer fails here, fast, before any trial runs.
    """
    remote = cfg.uri.startswith(("http://", "https://"))
    if remote:
        _check_server(cfg.uri)
    elif cfg.uri.startswith("sqlite:///"):
        Path(cfg.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = client_for(cfg.uri)
    try:
        exp = client.get_experiment_by_name(cfg.experiment)
        if exp is not None:
            return Tracker(client, exp.experiment_id)
        # A server stores artifacts where it was told to; the embedded store keeps them under mlruns/.
        location = None if remote else (Path(cfg.artifact_root).resolve() / cfg.experiment).as_uri()
        return Tracker(client, client.create_experiment(cfg.experiment, artifact_location=location))
    except MlflowException as exc:
        raise TunedagError(f"MLflow tracking at {redact(cfg.uri)} (tracking.uri) cannot be used: {exc.message}") from None


def _check_server(uri: str, timeout_s: float = 5.0) -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TunedagError(f"The MLflow tracking server at {redact(uri)} (tracking.uri) does not answer ({reason}); "
                           "start it (mlflow server ...) or point tracking.uri at the local store sqlite:///mlruns/mlflow.db.") from None


def redact(uri: str) -> str:
    """A URI with any password replaced by ***, fit for messages and logs."""
    import re

    return re.sub(r"(//[^/:@]+):[^@/]*@", r"\1:***@", uri)


def client_for(uri: str) -> MlflowClient:
    """A client for `uri`, one per absolute store location and process."""
    return _client(absolute_uri(uri))


def absolute_uri(uri: str) -> str:
    """A relative `sqlite:///path` made absolute, so a cached client never follows the working directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


@lru_cache(maxsize=8)
def _client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def start_run(tracker: Tracker, name: str, tags: dict[str, str], parent_id: str | None = None) -> str:
    """Create a run (nested under `parent_id` when given) and return its id."""
    tags = {MLFLOW_RUN_NAME: name, **tags}
    if parent_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_id
    return tracker.client.create_run(tracker.experiment_id, run_name=name, tags=tags).info.run_id


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


@lru_cache(maxsize=1)
def pip_requirements() -> tuple[str, ...]:
    """Explicit requirements, so model logging skips MLflow's slow inference subprocess."""
    names = ("scikit-learn", "skops", "numpy", "scipy", "pandas")
    return tuple(f"{n}=={version(n)}" for n in names)


def save_sklearn_model(model: Any, path: Path, trusted_types: list[str], signature: Any = None) -> None:
    """Write `model` as an MLflow sklearn model (skops format) at `path`."""
    import mlflow.sklearn

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


def find_runs(tracker: Tracker, filter_string: str) -> list[Any]:
    """Every run of the experiment matching an MLflow search filter (all pages)."""
    runs, token = [], None
    while True:
        page = tracker.client.search_runs([tracker.experiment_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
