"""Fixtures for the pure ML layer: the real params.yaml, small mutations of it, small datasets.

Nothing here starts Prefect or MLflow, uses the network, or writes outside `tmp_path`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from tunedag.config import Config, DataConfig
from tunedag.data import Prepared, load_source, prepare

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params.yaml"


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set `a.b.c` in a nested dict in place (creating sections) and return the dict."""
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return raw


@pytest.fixture(scope="session")
def real_params() -> dict[str, Any]:
    """The repository's params.yaml as plain data (never mutate: use `params`)."""
    return yaml.safe_load(PARAMS.read_text(encoding="utf-8"))


@pytest.fixture
def params_with(real_params: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """A deep copy of the real params.yaml with dotted keys replaced: `params_with({"tune.metric": "f1"})`."""

    def make(changes: dict[str, Any] | None = None) -> dict[str, Any]:
        raw = copy.deepcopy(real_params)
        for dotted, value in (changes or {}).items():
            set_dotted(raw, dotted, value)
        return raw

    return make


@pytest.fixture
def write_params(tmp_path: Path) -> Callable[..., Path]:
    """Write a dict (as YAML) or raw text to `tmp_path/params.yaml` and return the path."""

    def write(raw: dict[str, Any] | str, name: str = "params.yaml") -> Path:
        path = tmp_path / name
        text = raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_config(params_with: Callable[..., dict[str, Any]]) -> Callable[..., Config]:
    """A validated Config: the real params.yaml with dotted keys replaced, as `params_with` takes them."""

    def make(changes: dict[str, Any] | None = None) -> Config:
        return Config.model_validate(params_with(changes))

    return make


@pytest.fixture(scope="session")
def prepare_sklearn() -> Callable[..., Prepared]:
    """Load and split one of scikit-learn's bundled datasets (no network): `prepare_sklearn("iris", seed=0)`."""

    def make(name: str, seed: int = 0, **data: Any) -> Prepared:
        cfg = DataConfig(source="sklearn", name=name, **data)
        frame, target = load_source(cfg, seed)
        return prepare(frame, target, cfg, seed, f"sklearn:{name}")

    return make


def _mixed_frame(n: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    num = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "num": num,
            "count": rng.integers(0, 5, n).astype(float),
            "color": rng.choice(["red", "green", "blue"], n),
            "flag": rng.choice([True, False], n),
            "label": np.where(num + rng.normal(scale=0.5, size=n) > 0, "yes", "no"),
        }
    )
    frame.loc[::7, "num"] = np.nan
    frame.loc[::5, "color"] = None
    return frame


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """150 rows: numeric and categorical features with missing values, and a yes/no text label."""
    return _mixed_frame()


@pytest.fixture
def mixed_csv(tmp_path: Path, mixed_frame: pd.DataFrame) -> Path:
    """`mixed_frame` written as a CSV file under tmp_path."""
    path = tmp_path / "raw" / "mixed.csv"
    path.parent.mkdir()
    mixed_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def quiet_optuna():
    """Optuna's INFO line per trial silenced for the test (its level restored after)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)
