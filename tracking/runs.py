"""A run's writes through `MlflowClient` with explicit run ids: create it, log its values in one batch, close it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from stageio.files import write_failure
from tracking.store import Tracker
from tracking.tags import TAG_ERROR


def start_run(tracker: Tracker, name: str, tags: dict[str, str], parent_id: str | None = None) -> Run:
    """Create a run (nested under `parent_id` when given) and return it (its id and artifact URI are in `.info`)."""
    tags = {MLFLOW_RUN_NAME: name, **tags, **({MLFLOW_PARENT_RUN_ID: parent_id} if parent_id else {})}
    return tracker.client.create_run(tracker.experiment_id, run_name=name, tags=tags)


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts when the store keeps them on this machine's disk, else None."""
    if artifact_uri.startswith("file:"):
        return Path(local_file_uri_to_path(artifact_uri))
    return Path(artifact_uri) if Path(artifact_uri).is_absolute() else None  # a plain path; else a remote store's URI


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
    rows = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
    rows += [Metric(k, float(v), now, i) for k, series in (steps or {}).items() for i, v in enumerate(series, first_step)]
    params, tags = [Param(k, str(v)) for k, v in (params or {}).items()], [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    client.log_batch(run_id, metrics=rows, params=params, tags=tags)


def close_unrecorded(client: Any, run_id: str, error: BaseException) -> str:
    """The reason a trial's run could not be written, after closing that run KILLED with it if the store still allows.

    A run whose model or record failed on a disk or store that refuses writes (`write_failure`: it
    answered, with an error) must not stay RUNNING until the next run repairs it. A store that does
    not answer is not tried again here: its client would retry for minutes.
    """
    why = write_failure(error)
    reason = f"not recorded: MLflow failed ({why or error})"[:2000]
    if why is None:
        return reason
    try:
        client.set_tag(run_id, TAG_ERROR, reason)
        client.set_terminated(run_id, status="KILLED")
    except Exception:  # the store takes nothing more: the next run closes it (trials.recovery.recover_orphan_trials)
        pass
    return reason
