"""A classifier that misbehaves on purpose, by its `mode` parameter, for the bad-trial tests.

It lives in an importable module so worker processes can load it by its estimator path.
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.tree import DecisionTreeClassifier

TRACE_ENV = "TUNEDAG_TEST_FIT_TRACE"  # a file each fit appends a line to, when set


class MisbehavingClassifier(ClassifierMixin, BaseEstimator):
    """A decision tree fitted after `delay` seconds, unless `mode` says to raise, hang, eat memory, crash or predict NaN."""

    def __init__(self, mode: str = "ok", max_depth: int = 3, delay: float = 0.0, random_state: int | None = None):
        self.mode = mode
        self.max_depth = max_depth
        self.delay = delay
        self.random_state = random_state

    def fit(self, X, y):
        if trace := os.environ.get(TRACE_ENV):  # which process ran the fit: set per Dask worker by the elastic test
            with open(trace, "a") as fh:
                fh.write(f"{self.max_depth}\n")
        time.sleep(self.delay)  # a trial of a known length
        if self.mode == "raise":
            raise RuntimeError("this configuration is broken on purpose")
        if self.mode == "hang":
            time.sleep(600)
        if self.mode == "memory":
            hog = np.ones((64, 1024, 1024), dtype=np.float64)  # 512 MB
            hog.sum()
        if self.mode == "crash":
            os._exit(3)
        self.tree_ = DecisionTreeClassifier(max_depth=self.max_depth, random_state=self.random_state).fit(X, y)
        self.classes_ = self.tree_.classes_
        return self

    def predict(self, X):
        return self.tree_.predict(X)

    def predict_proba(self, X):
        proba = self.tree_.predict_proba(X)
        return np.full_like(proba, np.nan) if self.mode == "nan" else proba


def shift_features(X):
    """A feature transform from outside the reviewed modules, so skops lists it as a type to trust."""
    return X + 1.0
