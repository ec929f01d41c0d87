"""Estimators named by import path, wrapped in a preprocessing pipeline fitted on training rows."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tunedag.errors import ConfigError
from tunedag.imports import check_import_path, import_named

# Types we save to and load from skops files without asking: scikit-learn's own estimators and
# the numeric libraries they store state in, plus a few reviewed containers (never all of
# `builtins.`, which holds eval, exec and open). Anything else only with model.trusted_types.
ESTIMATOR_EXAMPLE = "sklearn.ensemble.RandomForestClassifier"


@lru_cache(maxsize=64)
def resolve_estimator(path: str) -> type[BaseEstimator]:
    """Import `package.module.Class` and return it if it is a scikit-learn estimator class.

    The path is checked for form and refused modules only: the allow-list is enforced when the config
    is validated (`check_estimator_path`), and the stages resolve validated paths.
    """
    module_name, obj = import_named(path, "model.estimator", ESTIMATOR_EXAMPLE, colon=False, enforce=False)
    if obj is None:
        raise ConfigError(f"model.estimator {path!r}: {module_name} has no attribute {path.rpartition('.')[2]!r}")
    if not (inspect.isclass(obj) and issubclass(obj, BaseEstimator) and hasattr(obj, "fit") and hasattr(obj, "predict")):
        raise ConfigError(
            f"model.estimator {path!r} is not a scikit-learn estimator class (a class with fit and predict); refused"
        )
    return obj


def check_estimator_path(path: str) -> None:
    """Raise ConfigError unless `path` names an estimator class within the allowed modules (checked before importing)."""
    check_import_path(path, "model.estimator", ESTIMATOR_EXAMPLE, colon=False)
    resolve_estimator(path)


def fit_takes_on_epoch(cls: type) -> bool:
    """Whether the estimator's `fit` takes an `on_epoch` callback (per-epoch curves and pruning)."""
    fit = getattr(cls, "fit", None)
    return fit is not None and "on_epoch" in inspect.signature(fit).parameters


def is_torch_estimator(path: str) -> bool:
    """Whether `path` names one of tunedag's torch estimators (or a subclass); imports no torch otherwise."""
    cls = resolve_estimator(path)
    nets = sys.modules.get("tunedag.nets")
    return nets is not None and issubclass(cls, nets.TorchEstimator)


def is_torch_estimator_instance(est: Any) -> bool:
    """Whether `est` is a torch estimator of tunedag.nets (without importing torch when it is not)."""
    nets = sys.modules.get("tunedag.nets")
    return nets is not None and isinstance(est, nets.TorchEstimator)


def estimator_param_names(path: str) -> set[str]:
    """The constructor parameters the estimator accepts (its `get_params` keys)."""
    return set(resolve_estimator(path)._get_param_names())


def estimator_kind(path: str, fixed: dict[str, Any]) -> str:
    """'classification', 'regression' or 'unknown' for the estimator built with `fixed`."""
    est = resolve_estimator(path)(**fixed)
    if is_classifier(est):
        return "classification"
    if is_regressor(est):
        return "regression"
    return "unknown"


def check_estimator_for_task(path: str | None, fixed: dict[str, Any], task: str) -> None:
    """Refuse a regressor for a classification task and the other way round (a train_fn family has no estimator)."""
    if path is None:
        return
    kind = estimator_kind(path, fixed)
    if kind != "unknown" and kind != task:
        raise ConfigError(
            f"model.estimator {path} is a {kind} estimator but the data is a {task} task (data.task or the target column)"
        )


def build_model(
    path: str,
    fixed: dict[str, Any],
    params: dict[str, Any],
    numeric: Sequence[str],
    categorical: Sequence[str],
    preprocess: Any,
) -> Pipeline:
    """A Pipeline of imputation, scaling and one-hot encoding, then the estimator with `fixed | params`."""
    steps = [("impute", SimpleImputer(strategy=preprocess.numeric_impute))]
    if preprocess.scale:
        steps.append(("scale", StandardScaler()))
    transformers = [("num", Pipeline(steps), list(numeric))]
    if categorical:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist", max_categories=preprocess.max_categories, sparse_output=False
        )
        cat = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", encoder)])
        transformers.append(("cat", cat, list(categorical)))
    prep = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    estimator = resolve_estimator(path)(**{**fixed, **params})
    return Pipeline([("preprocess", prep), ("model", estimator)])
