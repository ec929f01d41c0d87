"""Fixtures for end-to-end flow tests: one Prefect test server per session, a project per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.testing.utilities import prefect_test_harness

from tunedag.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]

# Small, fast settings on top of the real params.yaml: the shape of the config stays real.
SHRINK = {
    "tune.n_trials": 6,
    "tune.parallelism": 2,
    "tune.sampler.n_startup_trials": 3,
    "search_space.n_estimators": {"type": "int", "low": 5, "high": 30, "log": True},
}


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect API for every flow test in the session."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


def subprocess_env() -> dict[str, str]:
    """The environment for a pipeline subprocess: it uses the session's Prefect API, not a new one."""
    import os

    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return {**os.environ, **({"PREFECT_API_URL": url} if url else {})}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder with the repository's params.yaml, prefect.toml and raw data, as the working dir."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(REPO / "prefect.toml", tmp_path / "prefect.toml")  # Prefect's settings, as in a clone
    shutil.copytree(REPO / "data" / "raw", tmp_path / "data" / "raw")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def make_config(project: Path) -> Callable[..., Config]:
    """Load the project's params.yaml with the shrink overrides plus the test's own."""

    def make(**overrides: Any) -> Config:
        return load_config(project / "params.yaml", {**SHRINK, **{k.replace("__", "."): v for k, v in overrides.items()}})

    return make
