"""The objective (tunedag.objective): fit on train, score on validation or k folds, never on test."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from tunedag.config import Config, DataConfig
from tunedag.data import SPLIT, Prepared, prepare
from tunedag.metrics import metrics_for_task, score
from tunedag.objective import TrialFailed, evaluate, make_model

RF_CLASSIFIER = {"n_estimators": 10, "max_depth": 4, "min_samples_leaf": 2, "max_features": "sqrt", "criterion": "gini"}
RF_REGRESSOR = {**RF_CLASSIFIER, "max_features": 0.5, "criterion": "squared_error"}
REGRESSION = {
    "data.name": "diabetes",  # a regressor on a classification dataset is refused at load time
    "model.estimator": "sklearn.ensemble.RandomForestRegressor",
    "search_space.criterion": {"type": "categorical", "choices": ["squared_error", "absolute_error"]},
    "tune.metric": "rmse",
}

CASES = [
    # (config changes, the data, the params of one trial)
    pytest.param({}, "breast_cancer", RF_CLASSIFIER, id="binary-roc_auc"),
    pytest.param({"tune.metric": "log_loss"}, "iris", RF_CLASSIFIER, id="multiclass-log_loss"),
    pytest.param({"tune.metric": "f1"}, "mixed-csv", RF_CLASSIFIER, id="text-labels-categories-missing-f1"),
    pytest.param(REGRESSION, "diabetes", RF_REGRESSOR, id="regression-rmse"),
]


@pytest.fixture
def prepared(prepare_sklearn, mixed_frame: pd.DataFrame) -> Callable[..., Prepared]:
    """The prepared data for `cfg`: a bundled dataset, or the mixed CSV-like frame."""

    def make(cfg: Config, source: str) -> Prepared:
        data = {"val_size": cfg.data.val_size, "cv_folds": cfg.data.cv_folds}
        if source != "mixed-csv":
            return prepare_sklearn(source, seed=cfg.seed, **data)
        file_cfg = DataConfig(source="file", path=Path("mixed.csv"), target="label", **data)
        return prepare(mixed_frame, "label", file_cfg, cfg.seed, "mixed.csv")

    return make


def cv(changes: dict[str, Any], folds: int = 3) -> dict[str, Any]:
    return {**changes, "data.cv_folds": folds, "data.val_size": 0}


# --- hold-out validation ------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "source", "params"), CASES)
def test_holdout_scores_every_task_metric_on_validation(make_config, prepared, changes, source, params) -> None:
    cfg = make_config(changes)
    prep = prepared(cfg, source)

    outcome = evaluate(cfg, prep, params)

    assert set(outcome.metrics) == set(metrics_for_task(prep.task))
    assert all(math.isfinite(v) for v in outcome.metrics.values())
    assert outcome.value == outcome.metrics[cfg.tune.metric]
    assert outcome.fold_values == []
    assert isinstance(outcome.model, Pipeline)
    X_val, y_val = prep.xy("val")
    assert score(outcome.model, X_val, y_val, list(outcome.metrics)) == outcome.metrics


def test_holdout_value_is_a_real_score(make_config, prepared) -> None:
    cfg = make_config()
    outcome = evaluate(cfg, prepared(cfg, "breast_cancer"), RF_CLASSIFIER)
    assert 0.9 < outcome.value <= 1.0  # roc_auc of a forest on breast_cancer
    assert 0.0 < outcome.metrics["log_loss"] < 0.5


# --- k-fold cross-validation on train -----------------------------------------------------


@pytest.mark.parametrize(("changes", "source", "params"), CASES)
@pytest.mark.parametrize("folds", [2, 3])
def test_cross_validation_gives_one_value_per_fold(make_config, prepared, changes, source, params, folds) -> None:
    cfg = make_config(cv(changes, folds))
    prep = prepared(cfg, source)

    outcome = evaluate(cfg, prep, params)

    metric = cfg.tune.metric
    assert len(outcome.fold_values) == folds
    assert outcome.value == pytest.approx(np.mean(outcome.fold_values), rel=1e-12)
    assert outcome.metrics[metric] == outcome.value
    assert outcome.metrics[f"{metric}_std"] == pytest.approx(np.std(outcome.fold_values), rel=1e-12)
    assert set(outcome.metrics) == set(metrics_for_task(prep.task)) | {f"{metric}_std"}
    assert len(set(outcome.fold_values)) > 1  # folds are really different rows


# --- the test split is never read ---------------------------------------------------------


@pytest.mark.parametrize("folds", [0, 3])
def test_only_train_and_validation_rows_are_requested(make_config, prepared, monkeypatch, folds) -> None:
    cfg = make_config(cv({}, folds) if folds else {})
    prep = prepared(cfg, "breast_cancer")
    requested: list[tuple[str, ...]] = []
    original = Prepared.xy

    def recording_xy(self: Prepared, *splits: str):
        requested.append(splits)
        return original(self, *splits)

    monkeypatch.setattr(Prepared, "xy", recording_xy)
    evaluate(cfg, prep, RF_CLASSIFIER)

    assert requested
    assert all("test" not in splits for splits in requested)
    if folds:  # cross-validation runs on every non-test row: the validation split is not left idle
        assert requested == [("train", "val")]


def test_cross_validation_folds_cover_train_and_validation_rows(make_config, prepared, monkeypatch) -> None:
    cfg = make_config({"data.cv_folds": 3, "data.val_size": 0.2})
    prep = prepared(cfg, "breast_cancer")
    scored: list[int] = []
    original = score

    def counting_score(model, X, y, names, sample_weight=None):
        scored.append(len(X))
        return original(model, X, y, names, sample_weight)

    monkeypatch.setattr("tunedag.objective.score", counting_score)
    evaluate(cfg, prep, RF_CLASSIFIER)
    non_test = int((prep.frame[SPLIT] != "test").sum())
    assert (prep.frame[SPLIT] == "val").sum() > 0
    assert sum(scored) == non_test


def _poison_test_rows(prep: Prepared, label: Any) -> Prepared:
    """Test rows with absurd features and a label never seen in train or validation."""
    frame = prep.frame.copy()
    test = frame[SPLIT] == "test"
    frame.loc[test, list(prep.numeric)] = 1e6
    frame[prep.target] = frame[prep.target].astype(type(label))
    frame.loc[test, prep.target] = label
    return dataclasses.replace(prep, frame=frame)


@pytest.mark.parametrize(
    ("changes", "source", "params", "label"),
    [({}, "breast_cancer", RF_CLASSIFIER, 99), (REGRESSION, "diabetes", RF_REGRESSOR, 1e9)],
    ids=["classification", "regression"],
)
@pytest.mark.parametrize("folds", [0, 3])
def test_poisoned_test_rows_change_nothing(make_config, prepared, changes, source, params, label, folds) -> None:
    cfg = make_config(cv(changes, folds) if folds else changes)
    prep = prepared(cfg, source)

    clean = evaluate(cfg, prep, params)
    poisoned = evaluate(cfg, _poison_test_rows(prep, label), params)

    assert poisoned.value == clean.value
    assert poisoned.metrics == clean.metrics
    assert poisoned.fold_values == clean.fold_values
    if prep.task == "classification":
        assert label not in poisoned.model.classes_


# --- seeding ------------------------------------------------------------------------------


def test_make_model_seeds_the_estimator_from_cfg_seed(make_config, prepared) -> None:
    cfg = make_config({"seed": 123})
    model = make_model(cfg, prepared(cfg, "iris"), RF_CLASSIFIER)
    est = model.named_steps["model"]
    assert est.random_state == 123
    assert (est.n_estimators, est.max_depth, est.n_jobs) == (10, 4, 1)


def test_make_model_keeps_an_explicit_random_state(make_config, prepared) -> None:
    fixed = make_config({"model.fixed.random_state": 5})
    assert make_model(fixed, prepared(fixed, "iris"), RF_CLASSIFIER).named_steps["model"].random_state == 5
    searched = make_config({"search_space.random_state": {"type": "int", "low": 0, "high": 9}})
    params = {**RF_CLASSIFIER, "random_state": 7}
    assert make_model(searched, prepared(searched, "iris"), params).named_steps["model"].random_state == 7


def test_make_model_without_random_state_parameter(make_config, prepared) -> None:
    cfg = make_config(
        {
            "model.estimator": "sklearn.neighbors.KNeighborsClassifier",
            "model.fixed": {},
            "search_space": {"n_neighbors": {"type": "int", "low": 1, "high": 15}},
        }
    )
    model = make_model(cfg, prepared(cfg, "iris"), {"n_neighbors": 5})
    assert "random_state" not in model.named_steps["model"].get_params()
    assert 0.8 < evaluate(cfg, prepared(cfg, "iris"), {"n_neighbors": 5}).value <= 1.0


@pytest.mark.parametrize("folds", [0, 3])
def test_same_seed_same_value(make_config, prepared, folds) -> None:
    cfg = make_config(cv(REGRESSION, folds) if folds else REGRESSION)
    prep = prepared(cfg, "diabetes")
    first, again = evaluate(cfg, prep, RF_REGRESSOR), evaluate(cfg, prep, RF_REGRESSOR)
    assert (first.value, first.metrics, first.fold_values) == (again.value, again.metrics, again.fold_values)

    other = make_config({**(cv(REGRESSION, folds) if folds else REGRESSION), "seed": 43})
    assert evaluate(other, prep, RF_REGRESSOR).value != first.value  # same rows, other forest


# --- failures the study records -----------------------------------------------------------


def test_a_non_finite_value_fails_the_trial(make_config, prepared, monkeypatch) -> None:
    cfg = make_config()
    monkeypatch.setattr(
        "tunedag.objective.score", lambda model, X, y, names, sample_weight=None: {n: float("nan") for n in names}
    )
    with pytest.raises(TrialFailed, match="roc_auc"):
        evaluate(cfg, prepared(cfg, "breast_cancer"), RF_CLASSIFIER)


@pytest.mark.parametrize("source", ["breast_cancer", "iris"], ids=["binary", "multiclass"])
@pytest.mark.parametrize("folds", [0, 3])
def test_a_classifier_without_predict_proba_is_scored_by_accuracy(make_config, prepared, source, folds) -> None:
    """tune.metric: accuracy needs only predictions, so a model without predict_proba must be usable."""
    changes = {
        "model.estimator": "sklearn.linear_model.RidgeClassifier",
        "model.fixed": {},
        "search_space": {"alpha": {"type": "float", "low": 0.01, "high": 10.0, "log": True}},
        "tune.metric": "accuracy",
    }
    cfg = make_config(cv(changes, folds) if folds else changes)

    outcome = evaluate(cfg, prepared(cfg, source), {"alpha": 1.0})

    assert 0.6 < outcome.value <= 1.0  # well above chance (1/2, 1/3)
    assert outcome.value == outcome.metrics["accuracy"]


# --- the decision threshold under a threshold metric --------------------------------------


def _imbalanced(cfg: Config) -> Prepared:
    import warnings

    from tests.support.tables import churn_table

    file_cfg = DataConfig(source="file", path=Path("churn.csv"), target="churn", val_size=0.2, cv_folds=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ID and constant columns' warnings are tested in test_column_roles
        return prepare(churn_table(), "churn", file_cfg, cfg.seed, "churn.csv")


def test_under_f1_the_threshold_is_tuned_and_saved_with_the_model(make_config) -> None:
    from tunedag.metrics import decision_threshold

    cfg = make_config({"tune.metric": "f1"})
    prep = _imbalanced(cfg)
    outcome = evaluate(cfg, prep, RF_CLASSIFIER)
    threshold = decision_threshold(outcome.model)
    assert threshold is not None and threshold != 0.5
    X_val, _ = prep.xy("val")
    proba = outcome.model.predict_proba(X_val)[:, 1]
    assert list(outcome.model.predict(X_val)) == list(np.where(proba >= threshold, "yes", "no"))
    assert outcome.metrics["roc_auc"] > 0.5  # the score-based metrics read the refit estimator's probabilities


def test_under_roc_auc_the_estimator_keeps_its_own_rule(make_config) -> None:
    from tunedag.metrics import decision_threshold

    cfg = make_config()
    assert decision_threshold(evaluate(cfg, _imbalanced(cfg), RF_CLASSIFIER).model) is None
