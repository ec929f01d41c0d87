"""The MLflow store: one client per store and process (safe from worker threads), the experiment, run searches."""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tunedag.config import TrackingConfig
from tunedag.errors import TunedagError, redact

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
    elif (db := sqlite_file(cfg.uri)) is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    client = client_for(cfg.uri)
    try:
        exp = client.get_experiment_by_name(cfg.experiment)
        if exp is not None:
            if create and EXPERIMENT_KIND[0] not in exp.tags:  # an experiment created before tunedag set its kind
                client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
            return Tracker(client, exp.experiment_id)
        if not create:
            raise TunedagError(
                f"MLflow experiment {cfg.experiment!r} (tracking.experiment) does not exist at {redact(cfg.uri)}; "
                "start the study with `tunedag tune` before starting workers."
            )
        # A server stores artifacts where it was told to; the embedded store keeps them under mlruns/.
        location = None if remote else (Path(cfg.artifact_root).resolve() / cfg.experiment).as_uri()
        return Tracker(client, client.create_experiment(cfg.experiment, artifact_location=location, tags=dict([EXPERIMENT_KIND])))
    except MlflowException as exc:
        raise TunedagError(f"MLflow tracking at {redact(cfg.uri)} (tracking.uri) cannot be used: {exc.message}") from None


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
        raise TunedagError(
            f"The MLflow tracking server at {redact(uri)} (tracking.uri) does not answer ({getattr(exc, 'reason', exc)}); "
            "start it (mlflow server ...) or point tracking.uri at the local store sqlite:///mlruns/mlflow.db."
        ) from None


_CLIENT_LOCK = threading.Lock()


def client_for(uri: str) -> MlflowClient:
    """A client for `uri`, one per absolute store location and process (threads asking at once share it)."""
    with _CLIENT_LOCK:  # a first client creates the SQLite store: two threads must not do it at once
        return _client(absolute_uri(uri))


def sqlite_file(uri: str) -> Path | None:
    """The database file of an embedded store (`sqlite:///path`, relative to the working directory), else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def not_created(uri: str) -> bool:
    """An embedded store whose file does not exist yet: opening a client would create it, so readers skip it."""
    return (db := sqlite_file(uri)) is not None and not db.is_file()


def absolute_uri(uri: str) -> str:
    """A relative `sqlite:///path` made absolute, so a cached client never follows the working directory."""
    db = sqlite_file(uri)
    return uri if db is None or db.is_absolute() else f"sqlite:///{db.resolve()}"


@lru_cache(maxsize=8)
def _client(uri: str) -> MlflowClient:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bar among the pipeline's log lines
    if redact(uri) != uri:  # MLflow prints run links built from the tracking URI, password included
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    if (db := sqlite_file(uri)) is not None:
        _write_ahead_log(db)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _write_ahead_log(db: Path) -> None:
    """Put the SQLite store in write-ahead logging (kept in the file).

    A commit survives a killed process and, at SQLite's default synchronous=FULL, an OS crash; readers
    (the UI) no longer block the writer. It needs the store on a local disk, as the embedded store is.
    """
    try:
        with sqlite3.connect(db, timeout=10) as con:
            con.execute("PRAGMA journal_mode=WAL").fetchall()
        con.close()
    except sqlite3.Error:  # locked by another writer or read-only: it stays in its journal mode, which also works
        pass


def find_runs(tracker: Tracker, filter_string: str) -> list[Run]:
    """Every run of the experiment matching an MLflow search filter (all pages)."""
    runs, token = [], None
    while True:
        page = tracker.client.search_runs([tracker.experiment_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        if not (token := page.token):
            return runs
