"""A trial's config: the real params.yaml with its data, study and MLflow store under the test's folder, small forests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunedag.config import load_config
from tunedag.data import load_source, prepare, save_prepared


@pytest.fixture
def cfg(tmp_path: Path):
    cfg = load_config(
        "params.yaml",
        {
            "paths.prepared": str(tmp_path / "d.parquet"),
            "tune.storage": str(tmp_path / "s.journal"),
            "tracking.uri": f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}",
            "tracking.artifact_root": str(tmp_path / "mlruns/artifacts"),
            "search_space.n_estimators": {"type": "int", "low": 5, "high": 10},
        },
    )
    frame, target = load_source(cfg.data, cfg.seed)
    save_prepared(prepare(frame, target, cfg.data, cfg.seed, "test"), cfg.paths.prepared, {})
    return cfg
