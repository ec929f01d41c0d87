"""Metrics by name (tunedag.metrics) and estimators by import path (tunedag.estimators)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from modelio.trust import REVIEWED_TYPE_PREFIXES, skops_trusted_types
from tunedag.config import PreprocessConfig
from tunedag.errors import ConfigError
from tunedag.estimators import build_model, check_estimator_for_task, estimator_kind, estimator_param_names, resolve_estimator
from tunedag.metrics import METRICS, check_metric_for_task, metrics_for_task, score

CLASSIFICATION_METRICS = ["accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"]
REGRESSION_METRICS = ["r2", "rmse", "mae"]


# --- the metric table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task", "direction"),
    [
        ("accuracy", "classification", "maximize"),
        ("balanced_accuracy", "classification", "maximize"),
        ("f1", "classification", "maximize"),
        ("roc_auc", "classification", "maximize"),
        ("log_loss", "classification", "minimize"),
        ("r2", "regression", "maximize"),
        ("rmse", "regression", "minimize"),
        ("mae", "regression", "minimize"),
    ],
)
def test_metric_task_and_direction(name: str, task: str, direction: str) -> None:
    assert (METRICS[name].task, METRICS[name].direction) == (task, direction)


def test_metrics_for_task_partitions_the_table() -> None:
    assert metrics_for_task("classification") == CLASSIFICATION_METRICS
    assert metrics_for_task("regression") == REGRESSION_METRICS
    assert set(METRICS) == set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS)


@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_check_metric_for_task(name: str, task: str) -> None:
    if METRICS[name].task == task:
        check_metric_for_task(name, task)
        return
    with pytest.raises(ConfigError, match=rf"tune\.metric '{name}'") as info:
        check_metric_for_task(name, task)
    assert all(m in str(info.value) for m in metrics_for_task(task))


# --- score() against scikit-learn directly ------------------------------------------------


def _fit_logreg(X, y):
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(X_train, y_train)
    return model, X_val, y_val


def _expected(model, X, y) -> dict[str, float]:
    pred, proba = model.predict(X), model.predict_proba(X)
    binary = proba.shape[1] == 2
    pos = model.classes_[-1]
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "f1": skm.f1_score(y, pred, pos_label=pos) if binary else skm.f1_score(y, pred, average="macro"),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]) if binary else skm.roc_auc_score(y, proba, multi_class="ovr"),
        "log_loss": skm.log_loss(y, proba, labels=model.classes_),
    }


def _binary():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def _binary_text_labels():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y.map({0: "malignant", 1: "benign"})


def _multiclass():
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.mark.parametrize("data", [_binary, _binary_text_labels, _multiclass], ids=["binary", "binary-text-labels", "multiclass"])
def test_score_matches_sklearn_for_a_logistic_regression(data) -> None:
    model, X_val, y_val = _fit_logreg(*data())

    got = score(model, X_val, y_val, CLASSIFICATION_METRICS)

    assert list(got) == CLASSIFICATION_METRICS
    assert all(isinstance(v, float) for v in got.values())
    assert got == pytest.approx(_expected(model, X_val, y_val), rel=1e-12)


def test_score_matches_sklearn_for_a_regression() -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0)
    model = Pipeline([("model", Ridge())]).fit(X_train, y_train)
    pred = model.predict(X_val)

    got = score(model, X_val, y_val, REGRESSION_METRICS)

    assert got == pytest.approx(
        {
            "r2": skm.r2_score(y_val, pred),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_val, pred))),
            "mae": skm.mean_absolute_error(y_val, pred),
        },
        rel=1e-12,
    )


def test_score_computes_each_model_output_once() -> None:
    model, X_val, y_val = _fit_logreg(*_binary())
    calls = {"predict": 0, "predict_proba": 0}

    class Counting:
        classes_ = model.classes_

        def predict(self, X):
            calls["predict"] += 1
            return model.predict(X)

        def predict_proba(self, X):
            calls["predict_proba"] += 1
            return model.predict_proba(X)

    score(Counting(), X_val, y_val, CLASSIFICATION_METRICS)
    assert calls["predict"] == 1  # shared by accuracy, balanced_accuracy and f1
    assert 1 <= calls["predict_proba"] <= 2  # roc_auc and log_loss: at most once per kind of output


# --- estimators by import path ------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.ensemble.RandomForestRegressor",
        "sklearn.linear_model.LogisticRegression",
        "sklearn.neighbors.KNeighborsClassifier",
    ],
)
def test_resolve_estimator_accepts_estimator_classes(path: str) -> None:
    cls = resolve_estimator(path)
    assert f"{cls.__module__}.{cls.__name__}".startswith("sklearn.") and cls.__name__ == path.rsplit(".", 1)[1]


@pytest.mark.parametrize(
    "path",
    [
        "os.system",
        "json.JSONDecoder",
        "builtins.eval",
        "subprocess.Popen",
        "sklearn.preprocessing.StandardScaler",  # fit, but no predict
        "sklearn.pipeline.make_pipeline",  # a function
        "sklearn.ensemble.NoSuchForest",
        "no_such_module_xyz.Model",
        "RandomForestClassifier",
        "sklearn.ensemble.",
    ],
)
def test_resolve_estimator_refuses_anything_else(path: str) -> None:
    with pytest.raises(ConfigError, match=r"model\.estimator") as info:
        resolve_estimator(path)
    assert repr(path) in str(info.value)


def test_estimator_param_names() -> None:
    names = estimator_param_names("sklearn.ensemble.RandomForestClassifier")
    assert {"n_estimators", "max_depth", "random_state", "n_jobs"} <= names
    assert "learning_rate" not in names


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("sklearn.ensemble.RandomForestClassifier", "classification"),
        ("sklearn.linear_model.Ridge", "regression"),
        ("sklearn.cluster.KMeans", "unknown"),
    ],
)
def test_estimator_kind(path: str, kind: str) -> None:
    assert estimator_kind(path, {}) == kind


@pytest.mark.parametrize(
    ("path", "task"),
    [
        ("sklearn.ensemble.RandomForestRegressor", "classification"),
        ("sklearn.linear_model.Ridge", "classification"),
        ("sklearn.ensemble.RandomForestClassifier", "regression"),
    ],
)
def test_check_estimator_for_task_refuses_the_wrong_kind(path: str, task: str) -> None:
    with pytest.raises(ConfigError, match=r"model\.estimator") as info:
        check_estimator_for_task(path, {}, task)
    assert path in str(info.value) and task in str(info.value)


@pytest.mark.parametrize(
    ("path", "task"),
    [
        ("sklearn.ensemble.RandomForestClassifier", "classification"),
        ("sklearn.ensemble.RandomForestRegressor", "regression"),
        ("sklearn.cluster.KMeans", "classification"),  # unknown kind: not refused here
    ],
)
def test_check_estimator_for_task_accepts_the_right_kind(path: str, task: str) -> None:
    check_estimator_for_task(path, {}, task)


# --- the model pipeline -------------------------------------------------------------------


@pytest.fixture
def mixed_xy(mixed_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    X = mixed_frame.drop(columns="label")
    X["color"] = X["color"].astype(object)
    X["flag"] = X["flag"].astype(object)
    return X, mixed_frame["label"]


@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("impute", ["mean", "median", "most_frequent"])
def test_build_model_fits_numeric_and_categorical_columns_with_missing_values(mixed_xy, scale: bool, impute: str) -> None:
    X, y = mixed_xy
    assert X.isna().any().any()
    preprocess = PreprocessConfig(numeric_impute=impute, scale=scale)

    model = build_model(
        "sklearn.ensemble.RandomForestClassifier",
        {"n_jobs": 1, "random_state": 0},
        {"n_estimators": 10},
        ["num", "count"],
        ["color", "flag"],
        preprocess,
    ).fit(X, y)

    pred = model.predict(X)
    assert len(pred) == len(X) and set(pred) <= {"yes", "no"}
    assert (pred == y).mean() > 0.7
    num_steps = [name for name, _ in model.named_steps["preprocess"].named_transformers_["num"].steps]
    assert num_steps == (["impute", "scale"] if scale else ["impute"])
    assert model.named_steps["preprocess"].named_transformers_["num"].named_steps["impute"].strategy == impute

    unseen = X.head(3).assign(color=["purple", None, "red"], num=[np.nan, 1.0, 2.0])
    assert len(model.predict(unseen)) == 3


def test_build_model_params_override_fixed_arguments() -> None:
    model = build_model(
        "sklearn.ensemble.RandomForestClassifier",
        {"max_depth": 2, "n_jobs": 1},
        {"max_depth": 5},
        ["a"],
        [],
        PreprocessConfig(),
    )
    est = model.named_steps["model"]
    assert isinstance(est, RandomForestClassifier)
    assert (est.max_depth, est.n_jobs) == (5, 1)
    assert [name for name, *_ in model.named_steps["preprocess"].transformers] == ["num"]  # no categorical columns, no encoder


def test_build_model_limits_categories(mixed_xy) -> None:
    X, y = mixed_xy
    X = X.assign(color=[f"c{i % 12}" for i in range(len(X))])
    model = build_model(
        "sklearn.linear_model.LogisticRegression",
        {},
        {},
        ["num", "count"],
        ["color", "flag"],
        PreprocessConfig(max_categories=4),
    ).fit(X, y)
    onehot = model.named_steps["preprocess"].named_transformers_["cat"].named_steps["onehot"]
    assert len(onehot.get_feature_names_out()) <= 4 + 2  # color capped at 4 (3 + infrequent), flag has 2


# --- skops: which types a saved model may load --------------------------------------------


class TinyClassifier(ClassifierMixin, BaseEstimator):
    """An estimator from outside the reviewed libraries."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_skops_trusted_types_of_a_random_forest_pipeline(mixed_xy) -> None:
    X, y = mixed_xy
    model = build_model(
        "sklearn.ensemble.RandomForestClassifier",
        {"n_jobs": 1, "random_state": 0},
        {"n_estimators": 3},
        ["num", "count"],
        ["color", "flag"],
        PreprocessConfig(),
    ).fit(X, y)

    trusted = skops_trusted_types(model)

    assert trusted == sorted(trusted)
    assert "sklearn.tree._tree.Tree" in trusted
    assert all(t.startswith(REVIEWED_TYPE_PREFIXES) for t in trusted)


def test_skops_trusted_types_refuses_an_unreviewed_type() -> None:
    model = Pipeline([("model", TinyClassifier())]).fit(np.zeros((4, 1)), [0, 1, 0, 1])
    name = f"{TinyClassifier.__module__}.{TinyClassifier.__qualname__}"

    with pytest.raises(ConfigError, match=r"model\.trusted_types") as info:
        skops_trusted_types(model)
    assert name in str(info.value)

    assert name in skops_trusted_types(model, extra=[name])
