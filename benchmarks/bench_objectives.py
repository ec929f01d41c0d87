"""Objectives of controlled cost for the overhead benchmarks, as a scikit-learn classifier.

`SpinClassifier(a, b, cost_ms)` spins the CPU for `cost_ms` milliseconds in `fit` and predicts
the training class frequencies; `a` and `b` are the two integer hyperparameters the benchmarks
search (they change nothing but the score's tie-break, so every trial costs the same). It goes
through the whole tunedag pipeline like any estimator (preprocessing, scoring, a saved skops
model), so the pipeline's overhead can be measured against a bare loop on the same objective.

The benchmarks put this folder on PYTHONPATH, so the class is `bench_objectives.SpinClassifier`
in params.yaml and must be listed in `model.trusted_types` for the skops model file.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

TYPE_NAME = "bench_objectives.SpinClassifier"


def spin(ms: float) -> None:
    """Keep one core busy for `ms` milliseconds (a busy loop, not a sleep: it costs CPU like training)."""
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        pass


class SpinClassifier(ClassifierMixin, BaseEstimator):
    """Costs `cost_ms` of CPU to fit; predicts the majority class, with probabilities = class frequencies."""

    def __init__(self, a: int = 0, b: int = 0, cost_ms: float = 0.0):
        self.a, self.b, self.cost_ms = a, b, cost_ms

    def fit(self, X, y):
        spin(self.cost_ms)
        self.classes_, counts = np.unique(np.asarray(y), return_counts=True)
        self.prior_ = counts / counts.sum()
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))

    def predict(self, X):
        pick = (self.a + self.b) % len(self.classes_) if self.a == self.b else int(np.argmax(self.prior_))
        return np.full(len(X), self.classes_[pick])
