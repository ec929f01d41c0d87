"""Voting and stacking ensembles of preprocessing pipelines: fit, predict, and skops round trip."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import StackingClassifier, StackingRegressor, VotingClassifier, VotingRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from modelio.trust import REVIEWED_TYPE_PREFIXES, skops_trusted_types
from tunedag.config import PreprocessConfig
from tunedag.ensemble import build_ensemble, voting_mode
from tunedag.estimators import build_model

SEED = 0
Split = tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]

# Members as the tuning flow makes them: tunedag's preprocessing Pipeline around each estimator.
PROBA_CLASSIFIERS = [
    ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20, "max_depth": 4, "random_state": SEED}),
    ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20, "max_depth": 8, "random_state": SEED}),
    ("sklearn.linear_model.LogisticRegression", {"C": 1.0, "max_iter": 1000}),
]
WITHOUT_PROBA = ("sklearn.linear_model.RidgeClassifier", {"alpha": 1.0})
REGRESSORS = [
    ("sklearn.ensemble.RandomForestRegressor", {"n_estimators": 20, "max_depth": 4, "random_state": SEED}),
    ("sklearn.linear_model.Ridge", {"alpha": 1.0}),
    ("sklearn.linear_model.Ridge", {"alpha": 10.0}),
]


def _split(loader: Callable[..., Any], stratify: bool) -> Split:
    X, y = loader(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.25, random_state=SEED, stratify=y if stratify else None)


@pytest.fixture(scope="module")
def cancer() -> Split:
    return _split(load_breast_cancer, stratify=True)


@pytest.fixture(scope="module")
def diabetes() -> Split:
    return _split(load_diabetes, stratify=False)


def members(specs: list[tuple[str, dict[str, Any]]], columns: list[str]) -> list[tuple[str, Pipeline]]:
    """Unfitted pipelines named trial_0, trial_1, ... as the top-K trials would be."""
    return [
        (f"trial_{i}", build_model(path, {}, params, columns, [], PreprocessConfig())) for i, (path, params) in enumerate(specs)
    ]


CASES = {
    "voting_soft": ("voting", "classification", PROBA_CLASSIFIERS),
    "voting_hard": ("voting", "classification", [*PROBA_CLASSIFIERS[:2], WITHOUT_PROBA]),
    "stacking_clf": ("stacking", "classification", [*PROBA_CLASSIFIERS[:2], WITHOUT_PROBA]),
    "voting_reg": ("voting", "regression", REGRESSORS),
    "stacking_reg": ("stacking", "regression", REGRESSORS),
}


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request, cancer, diabetes) -> tuple[str, Any, Split]:
    """(case name, ensemble fitted on the train split, the split), fitted once per module."""
    kind, task, specs = CASES[request.param]
    data = cancer if task == "classification" else diabetes
    X_train, _, y_train, _ = data
    ensemble = build_ensemble(kind, members(specs, list(X_train.columns)), task, SEED)
    return request.param, ensemble.fit(X_train, y_train), data


def test_predictions_have_one_row_per_sample_and_sensible_scores(fitted):
    name, model, (_, X_test, _, y_test) = fitted
    pred = model.predict(X_test)
    assert pred.shape == (len(X_test),)
    if name.endswith("reg"):
        assert r2_score(y_test, pred) > 0.25  # about 0.35 on this split; predicting the mean scores 0
    else:
        assert set(np.unique(pred)) <= {0, 1}
        assert accuracy_score(y_test, pred) > 0.85


def test_skops_round_trip_with_reviewed_types_only(fitted, tmp_path):
    _, model, (_, X_test, _, _) = fitted
    trusted = skops_trusted_types(model)  # raises ConfigError on any type outside sklearn/numpy/scipy
    assert all(t.startswith(REVIEWED_TYPE_PREFIXES) for t in trusted)
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    loaded = skops.io.load(path, trusted=trusted)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))


def test_soft_voting_when_every_member_has_proba(cancer):
    X_train, X_test, y_train, _ = cancer
    ensemble = build_ensemble("voting", members(PROBA_CLASSIFIERS, list(X_train.columns)), "classification", SEED)
    assert isinstance(ensemble, VotingClassifier) and ensemble.voting == "soft"
    proba = ensemble.fit(X_train, y_train).predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("path", ["sklearn.linear_model.RidgeClassifier", "sklearn.svm.LinearSVC"])
def test_hard_voting_when_a_member_lacks_proba(path):
    specs = [*PROBA_CLASSIFIERS[:2], (path, {})]
    built = members(specs, ["a", "b"])
    assert voting_mode(built) == "hard"
    ensemble = build_ensemble("voting", built, "classification", SEED)
    assert ensemble.voting == "hard" and not hasattr(ensemble, "predict_proba")


def test_stacking_arguments_are_explicit_and_seeded():
    clf = build_ensemble("stacking", members(PROBA_CLASSIFIERS, ["a"]), "classification", 7)
    assert isinstance(clf, StackingClassifier) and clf.stack_method == "auto" and not clf.passthrough
    assert isinstance(clf.cv, StratifiedKFold) and (clf.cv.n_splits, clf.cv.shuffle, clf.cv.random_state) == (5, True, 7)
    assert isinstance(clf.final_estimator, LogisticRegression) and clf.final_estimator.max_iter == 1000
    reg = build_ensemble("stacking", members(REGRESSORS, ["a"]), "regression", 7)
    assert isinstance(reg, StackingRegressor) and isinstance(reg.final_estimator, RidgeCV)
    assert isinstance(reg.cv, KFold) and (reg.cv.n_splits, reg.cv.shuffle, reg.cv.random_state) == (5, True, 7)
    assert isinstance(build_ensemble("voting", members(REGRESSORS, ["a"]), "regression", 7), VotingRegressor)


def test_members_are_not_fitted_in_place(cancer):
    X_train, _, y_train, _ = cancer
    built = members(PROBA_CLASSIFIERS[:2], list(X_train.columns))
    build_ensemble("voting", built, "classification", SEED).fit(X_train, y_train)
    assert not hasattr(built[0][1], "n_features_in_")  # the ensemble fits clones


@pytest.mark.parametrize(
    ("kind", "task", "n_members", "message"),
    [
        ("none", "classification", 3, "kind"),
        ("bagging", "classification", 3, "kind"),
        ("voting", "clustering", 3, "task"),
        ("voting", "classification", 1, "at least 2"),
        ("stacking", "regression", 0, "at least 2"),
    ],
)
def test_refuses_bad_arguments(kind, task, n_members, message):
    specs = REGRESSORS if task == "regression" else PROBA_CLASSIFIERS
    with pytest.raises(ValueError, match=message):
        build_ensemble(kind, members(specs[:n_members], ["a"]), task, SEED)


def test_members_from_make_model_on_the_real_config(make_config, prepare_sklearn):
    """The integration path: top-K params through objective.make_model, fit on train + val, score on test."""
    from tunedag.objective import make_model

    cfg = make_config()  # the repository's params.yaml: RandomForestClassifier on breast_cancer
    prep = prepare_sklearn(cfg.data.name, seed=cfg.seed)
    top = [
        {"n_estimators": 20, "max_depth": 4, "min_samples_leaf": 1, "max_features": "sqrt", "criterion": "gini"},
        {"n_estimators": 30, "max_depth": 8, "min_samples_leaf": 2, "max_features": 0.5, "criterion": "entropy"},
    ]
    built = [(f"trial_{i}", make_model(cfg, prep, params)) for i, params in enumerate(top)]
    ensemble = build_ensemble("voting", built, prep.task, cfg.seed).fit(*prep.xy("train", "val"))
    X_test, y_test = prep.xy("test")
    assert accuracy_score(y_test, ensemble.predict(X_test)) > 0.85
    skops.io.loads(skops.io.dumps(ensemble), trusted=skops_trusted_types(ensemble))
