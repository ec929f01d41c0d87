"""The extra objectives `predict_latency_ms` and `model_size_kb` are measured on the trial's own model."""

from __future__ import annotations

import math

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
    assert big.values[1] > 2 * small.values[1], "300 trees take longer to predict than 2 (about 5x here on 2 busy cores)"
    assert big.values[2] > 50 * small.values[2], "and weigh more"
