"""Fixtures for end-to-end flow tests: one Prefect server for the run, one shared default run, a project per test."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from services.prefect_api import Lease
from tunedag.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]

# Small, fast settings on top of the real params.yaml: the shape of the config stays real. Trials run in threads:
# the worker processes' start-up would be much of each short study, and the process pool (params.yaml's default) is
# tested end to end by the shared default run, test_bad_trials, test_resume and test_distributed's worker.
SHRINK = {
    "tune.n_trials": 6,
    "tune.parallelism": 2,
    "tune.sampler.n_startup_trials": 3,
    "tune.executor": "thread",
    "search_space.n_estimators": {"type": "int", "low": 5, "high": 30, "log": True},
}


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """One Prefect API for every flow test of the run, shared by pytest-xdist's workers; flow runs send no heartbeats.

    It is the project's own server (services.prefect_api) with the run's temporary folder as its project: the
    first worker to ask starts it and creates its database (Prefect's migrations, about 10 s of CPU, once rather
    than once a worker), and it stops a few seconds after the last worker let it go. It is named in Prefect's
    settings only, as prefect_test_harness names its server. Heartbeats are off, as `tunedag <stage>` turns them
    off on the project's server (flows._cli._point_prefect_at): their thread sleeps in one-second steps, and a flow
    run ends only once it wakes.
    """
    base = tmp_path_factory.getbasetemp()
    lease = Lease(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base, idle_s=5)
    try:
        with temporary_settings({PREFECT_API_URL: lease.wait(), PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
    finally:
        lease.release()


def subprocess_env() -> dict[str, str]:
    """The environment for a pipeline subprocess: it uses the session's Prefect API, not a new one."""
    url = PREFECT_API_URL.value()
    return {**os.environ, **({"PREFECT_API_URL": url} if url else {})}


def refused_by_run(project: Path) -> str:
    """`tunedag run` in `project`, asserted refused: exit 2, one line, no traceback; the line."""
    import subprocess

    from tests.support.commands import TUNEDAG

    done = subprocess.run([*TUNEDAG, "run"], cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    message = done.stderr.strip()
    assert done.returncode == 2 and "\n" not in message and "Traceback" not in done.stderr, done.stderr[-2000:]
    return message


def copy_project(folder: Path) -> Path:
    """Put the repository's params.yaml, prefect.toml and raw data in `folder`, as a clone has them."""
    shutil.copy(REPO / "params.yaml", folder / "params.yaml")
    shutil.copy(REPO / "prefect.toml", folder / "prefect.toml")  # Prefect's settings, as in a clone
    shutil.copytree(REPO / "data" / "raw", folder / "data" / "raw")
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder with the repository's params.yaml, prefect.toml and raw data, as the working dir."""
    monkeypatch.chdir(copy_project(tmp_path))
    return tmp_path


# The session's one default pipeline run: SHRINK with params.yaml's process pool, and 3-fold cross-validation so
# the report has its fold figures.
DEFAULT_RUN = {**SHRINK, "tune.executor": "process", "data.cv_folds": 3, "data.val_size": 0.0}


@dataclass(frozen=True)
class DefaultRun:
    """What the shared run left: its project (params.yaml holds DEFAULT_RUN), config, scores, stdout and tells."""

    project: Path
    cfg: Config
    scores: dict[str, float]
    printed: str
    told: list[tuple[int, str, bool]]  # per trial told: its number, its MLflow run's status, whether its model was on disk


def write_params(project: Path, overrides: dict[str, Any]) -> Path:
    """Write `overrides` (dotted keys) into the project's params.yaml, as a user edits it; return its path."""
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def default_run(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> DefaultRun:
    """The default pipeline, run once for the session on a shrunk params.yaml, for the read-only checks on its outputs.

    Its tests live in one file (tests/flows/test_default_run.py), so `--dist loadfile` runs it once in all.
    Each trial's `Study.tell` is watched on the way: the order of record (run and model written before the tell).
    """
    import optuna

    from flows.pipeline import pipeline_flow
    from modelio.mlflow_models import MODEL_ARTIFACT
    from tracking.runs import local_artifact_dir
    from tracking.store import client_for

    project = copy_project(tmp_path_factory.mktemp("default-run"))
    cfg = load_config(write_params(project, DEFAULT_RUN))
    told: list[tuple[int, str, bool]] = []
    real_tell = optuna.Study.tell

    def tell(self, trial, values=None, state=None, **kw):
        if isinstance(trial, optuna.Trial) and "mlflow_run_id" in trial.user_attrs:
            run = client_for(cfg.tracking.uri).get_run(trial.user_attrs["mlflow_run_id"])
            model = local_artifact_dir(run.info.artifact_uri) / MODEL_ARTIFACT / "MLmodel"
            told.append((trial.number, run.info.status, model.is_file()))
        return real_tell(self, trial, values, state, **kw)

    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.chdir(project)
        patch.setattr(optuna.Study, "tell", tell)
        scores = pipeline_flow(cfg)
    return DefaultRun(project, cfg, scores, printed.getvalue(), told)


@pytest.fixture
def in_default_run(default_run: DefaultRun, monkeypatch: pytest.MonkeyPatch) -> DefaultRun:
    """The shared run, with its project as the working directory."""
    monkeypatch.chdir(default_run.project)
    return default_run


@pytest.fixture
def make_config(project: Path, empty_mlflow_store: Callable[[str], None]) -> Callable[..., Config]:
    """Load the project's params.yaml with the shrink overrides plus the test's own.

    A local MLflow store the config names starts as a copy of an empty one (tests/conftest.py): MLflow's
    migrations of a new store are made by the shared default run, the DVC and subprocess tests, and
    tests/tracking/test_store.py.
    """

    def make(**overrides: Any) -> Config:
        cfg = load_config(project / "params.yaml", {**SHRINK, **{k.replace("__", "."): v for k, v in overrides.items()}})
        if cfg.tracking.uri.startswith("sqlite:///") and not Path(cfg.tracking.uri.removeprefix("sqlite:///")).exists():
            empty_mlflow_store(cfg.tracking.uri)
        return cfg

    return make
