"""The extra objectives `predict_latency_ms` and `model_size_kb` are measured on the trial's own model."""

from __future__ import annotations

import math

import pytest

from tunedag import objective
from tunedag.objective import evaluate

RF = {
    "seed": 0,
    "data.name": "breast_cancer",
    "model.estimator": "sklearn.ensemble.RandomForestClassifier",
    "model.fixed": {"n_jobs": 1},
    "search_space": {"n_estimators": {"type": "int", "low": 2, "high": 400}},
    "tune.metric": "roc_auc",
    "tune.objectives": ["predict_latency_ms", "model_size_kb"],
}


def test_latency_and_size_are_measured_and_grow_with_the_model(make_config, prepare_sklearn):
    cfg = make_config(RF)
    prep = prepare_sklearn("breast_cancer", seed=0)
    small, big = (evaluate(cfg, prep, {"n_estimators": n}) for n in (2, 300))
    for outcome in (small, big):
        latency, size = outcome.values[1], outcome.values[2]
        assert outcome.values[0] == outcome.metrics["roc_auc"]
        assert latency == outcome.metrics["predict_latency_ms"] and size == outcome.metrics["model_size_kb"]
        assert math.isfinite(latency) and latency > 0 and size > 0
    assert big.values[1] > small.values[1], "300 trees take longer to predict than 2 (5-50x here)"
    assert big.values[2] > 50 * small.values[2], "and weigh more"


def test_latency_is_the_median_prediction_time_per_1000_validation_rows(make_config, prepare_sklearn, monkeypatch):
    """On a clock that reads 0, 2, 5 ms around the three timed predictions (2, 3, 4 ms each): the median, 3 ms, per 1,000 rows."""
    cfg = make_config({**RF, "tune.objectives": ["predict_latency_ms"]})
    prep = prepare_sklearn("breast_cancer", seed=0)
    model = evaluate(cfg, prep, {"n_estimators": 3}).model
    ticks = iter([0.0, 0.002, 0.010, 0.013, 0.020, 0.024])
    predicted = []
    real_predict = model.predict
    monkeypatch.setattr(model, "predict", lambda X: predicted.append(len(X)) or real_predict(X))
    monkeypatch.setattr(objective.time, "perf_counter", lambda: next(ticks))
    latency = objective._objective_values(cfg, prep, objective.TrialOutcome([], {"roc_auc": 0.5}, model=model))[1]
    n_val = len(prep.xy("val")[1])
    assert predicted == [n_val] * 3
    assert latency == pytest.approx(3.0 * 1000 / n_val)
