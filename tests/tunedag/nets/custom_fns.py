"""train_fn implementations used by the tests (named by import path in configs)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

# The params.yaml changes that make `logistic` below the model (shared by the config and train_fn tests).
TRAIN_FN = {
    "model.estimator": None,
    "model.train_fn": "tests.tunedag.nets.custom_fns:logistic",
    "model.fixed": {"steps": 3},
    "search_space": {"C": {"type": "float", "low": 0.01, "high": 10, "log": True}},
    "tune.metric": "my_score",
    "tune.direction": "maximize",
}


def logistic(params, data, reporter):
    """Fit a logistic regression for `steps` rounds of growing max_iter; report and log each round."""
    for step in range(1, params.get("steps", 3) + 1):
        with warnings.catch_warnings():  # few iterations on purpose: the steps are the fidelity
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(C=params["C"], max_iter=10 * step, random_state=data.seed).fit(data.X_train, data.y_train)
        score = float(np.mean(model.predict(data.X_val) == data.y_val))
        reporter.log(step, {"val_score": score})
        reporter.report(step, score)
    return {"my_score": score, "rows": float(len(data.X_train)), "stage_final": float(data.stage == "final")}, model


def no_metric(params, data, reporter):
    return {"something_else": 1.0}


def not_a_dict(params, data, reporter):
    return 0.5


NOT_CALLABLE = 3
