"""Your own table from `data: {source: file, path, target}` alone: the preset tunes it, end to end."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml

from flows.pipeline import pipeline_flow
from tests.flows.conftest import refused_by_run
from tests.flows.ledger import check_ledger
from tests.support.tables import churn_table, regression_table, write_csv
from tracking.store import absolute_uri, client_for
from tunedag.config import load_config
from tunedag.data import ColumnWarning

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

# The three families' defaults, then two sampled trials, in threads (the worker pool's start-up would be most of it).
FEW = {"tune": {"n_trials": 5, "parallelism": 2, "executor": "thread"}}


def _own_params(project: Path, csv: str, target: str) -> Path:
    path = project / "params.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "file", "path": csv, "target": target}, **FEW}), encoding="utf-8")
    return path


def _served_inputs(cfg) -> list[str]:
    mlflow.set_tracking_uri(absolute_uri(cfg.tracking.uri))
    (version,) = client_for(cfg.tracking.uri).search_model_versions(f"name = '{cfg.final.registered_model}'")
    info = mlflow.models.get_model_info(f"models:/{cfg.final.registered_model}/{version.version}")
    return info.signature.inputs.input_names()


def test_a_churn_table_from_path_and_target_alone(project):
    frame = churn_table()
    write_csv(frame, project / "data/raw/churn.csv")
    cfg = load_config(_own_params(project, "data/raw/churn.csv", "churn"))
    with pytest.warns(ColumnWarning, match="customer_id"):
        scores = pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=5)
    first = sorted(study.trials, key=lambda t: t.number)[:3]
    assert [t.params["family"] for t in first] == ["linear", "hgb", "rf"]  # the families' defaults come first
    assert first[1].params["hgb.learning_rate"] == 0.1 and first[2].params["rf.max_depth"] is None
    assert cfg.data.cv_folds == 5 and cfg.tune.metric == "roc_auc"
    assert 0.5 < scores["test_roc_auc"] <= 1.0
    inputs = _served_inputs(cfg)
    assert "customer_id" not in inputs and "region" not in inputs and "plan" in inputs
    model = mlflow.pyfunc.load_model(f"models:/{cfg.final.registered_model}/1")
    assert (
        len(
            model.predict(
                frame.drop(columns=["churn"])
                .head(3)
                .assign(**{f"signup_date_{p}": 1.0 for p in ("year", "month", "day", "weekday")})[inputs]
            )
        )
        == 3
    )


def test_regression_from_path_and_target_alone(project):
    write_csv(regression_table(), project / "data/raw/prices.csv")
    cfg = load_config(_own_params(project, "data/raw/prices.csv", "price"))
    scores = pipeline_flow(cfg)

    check_ledger(cfg, n_complete=5)
    assert cfg.tune.metric == "r2"
    assert scores["test_r2"] > 0.8


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (
            {
                "data": {"source": "sklearn", "name": "diabetes"},
                "tune": {"metric": "r2"},
                "model": {"estimator": "sklearn.ensemble.RandomForestRegressor"},
                "search_space": {"criterion": {"type": "categorical", "choices": ["gini", "entropy"]}},
            },
            ["search_space.criterion", "'gini' is refused by RandomForestRegressor"],
        ),
        (
            {
                "data": {"source": "sklearn", "name": "iris"},
                "model": {
                    "families": {
                        "hgb": {
                            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                            "fixed": {"n_jobs": 1},
                            "search_space": {"max_iter": {"type": "int", "low": 50, "high": 200}},
                        }
                    }
                },
            },
            ["model.families.hgb", "fixed.n_jobs is not an argument of HistGradientBoostingClassifier"],
        ),
    ],
    ids=["classifier-criterion-on-a-regressor", "n_jobs-on-hist-gradient-boosting"],
)
def test_config_errors_are_refused_before_the_first_trial(tmp_path, overrides, words):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(overrides), encoding="utf-8")
    message = refused_by_run(tmp_path)
    assert all(w in message for w in words), message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no study, no store, no prepared data
