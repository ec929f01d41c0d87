"""data.group and data.weight through the whole pipeline; data.weight refused by `tunedag run` before anything is written."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from flows.pipeline import pipeline_flow
from tasks.evaluation import load_final_model
from tests.flows.conftest import refused_by_run
from tests.support.tables import churn_table, write_csv
from tracking.store import absolute_uri, client_for
from tracking.tags import TAG_PROMOTION
from tunedag.config import load_config
from tunedag.data import SPLIT, ColumnWarning, file_md5, load_prepared
from tunedag.metrics import score

pytestmark = [pytest.mark.slow]


def _table() -> pd.DataFrame:
    frame = churn_table()
    rng = np.random.default_rng(1)
    frame["store"] = [f"s{i}" for i in rng.integers(0, 25, len(frame))]
    frame["w"] = rng.uniform(0.0, 3.0, len(frame))
    return frame


def _params(folder: Path, data: dict, extra: dict | None = None) -> Path:
    write_csv(_table(), folder / "data/raw/churn.csv")
    raw = {"data": {"source": "file", "path": "data/raw/churn.csv", "target": "churn", **data}, **(extra or {})}
    raw.setdefault("tune", {}).update({"n_trials": 4, "parallelism": 2, "executor": "thread"})
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.usefixtures("prefect_server")
def test_group_and_weight_through_the_pipeline(project):
    cfg = load_config(_params(project, {"group": "store", "weight": "w", "id": "customer_id"}))
    with pytest.warns(ColumnWarning):
        scores = pipeline_flow(cfg)

    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    assert (prep.group, prep.weight) == ("store", "w")
    assert (prep.frame.groupby("store")[SPLIT].nunique() == 1).all()
    X, y = prep.xy("test")
    model = load_final_model(cfg.paths.model_dir, cfg.model.trusted_types)
    weighted = score(model, X, y, ["roc_auc"], prep.weights("test"))["roc_auc"]
    assert scores["test_roc_auc"] == pytest.approx(weighted)
    assert scores["test_roc_auc"] != pytest.approx(score(model, X, y, ["roc_auc"])["roc_auc"])

    mlflow.set_tracking_uri(absolute_uri(cfg.tracking.uri))
    (version,) = client_for(cfg.tracking.uri).search_model_versions(f"name = '{cfg.final.registered_model}'")
    info = mlflow.models.get_model_info(f"models:/{cfg.final.registered_model}/{version.version}")
    inputs = info.signature.inputs.input_names()
    assert "plan" in inputs and not {"store", "w", "customer_id"} & set(inputs)

    again = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"n_trials": 6})})
    with pytest.warns(ColumnWarning):
        second = pipeline_flow(again)  # version 2 is compared with champion version 1 on the test rows, weighed as well
    model = load_final_model(cfg.paths.model_dir, cfg.model.trusted_types)
    assert second["test_roc_auc"] != pytest.approx(score(model, X, y, ["roc_auc"])["roc_auc"], abs=1e-6)
    reason = client_for(cfg.tracking.uri).get_model_version(cfg.final.registered_model, "2").tags[TAG_PROMOTION]
    assert "champion version 1 on the same test split" in reason, reason
    assert f": test_roc_auc {second['test_roc_auc']:.6g} vs {scores['test_roc_auc']:.6g}" in reason, reason


@pytest.mark.usefixtures("prefect_server")
def test_a_weight_the_estimator_cannot_take_is_refused_before_anything_is_written(tmp_path):
    model = {
        "model": {"estimator": "sklearn.neighbors.KNeighborsClassifier"},
        "search_space": {"n_neighbors": {"type": "int", "low": 1, "high": 20}},
    }
    _params(tmp_path, {"weight": "w"}, model)
    message = refused_by_run(tmp_path)
    assert "data.weight ('w')" in message and "KNeighborsClassifier" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "params.yaml"]  # no study, no store, no prepared data
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["raw"]
