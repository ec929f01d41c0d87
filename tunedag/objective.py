"""The objective: fit one configuration and score it on validation data, never on test."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from tunedag.config import Config
from tunedag.data import Prepared
from tunedag.estimators import build_model, estimator_param_names
from tunedag.metrics import score, usable_metrics


class TrialFailed(Exception):
    """A configuration could not be evaluated; the study records it as failed and goes on."""


@dataclass
class TrialOutcome:
    """The objective value, every validation metric, per-fold values, and the fitted model."""

    value: float
    metrics: dict[str, float]
    fold_values: list[float] = field(default_factory=list)
    model: Pipeline | None = None


def make_model(cfg: Config, prep: Prepared, params: dict[str, Any]) -> Pipeline:
    """The preprocessing + estimator pipeline for `params`, seeded from `cfg.seed`."""
    fixed = dict(cfg.model.fixed)
    if "random_state" in estimator_param_names(cfg.model.estimator) and "random_state" not in params:
        fixed.setdefault("random_state", cfg.seed)
    return build_model(cfg.model.estimator, fixed, params, prep.numeric, prep.categorical, cfg.model.preprocess)


def evaluate(cfg: Config, prep: Prepared, params: dict[str, Any]) -> TrialOutcome:
    """Score `params` by the configured metric on the validation split or by k-fold CV on train."""
    if cfg.data.cv_folds >= 2:
        return _cross_validate(cfg, prep, params)
    X_train, y_train = prep.xy("train")
    X_val, y_val = prep.xy("val")
    model = make_model(cfg, prep, params).fit(X_train, y_train)
    metrics = score(model, X_val, y_val, usable_metrics(model, prep.task, cfg.tune.metric))
    return TrialOutcome(_finite(metrics[cfg.tune.metric], cfg.tune.metric), metrics, [], model)


def _cross_validate(cfg: Config, prep: Prepared, params: dict[str, Any]) -> TrialOutcome:
    X, y = prep.xy("train")
    splitter_cls = StratifiedKFold if prep.task == "classification" else KFold
    splitter = splitter_cls(n_splits=cfg.data.cv_folds, shuffle=True, random_state=cfg.seed)
    template = make_model(cfg, prep, params)
    names: list[str] = []
    per_fold: list[dict[str, float]] = []
    for train_idx, val_idx in splitter.split(X, y):
        fold_model = clone(template).fit(X.iloc[train_idx], y.iloc[train_idx])
        names = names or usable_metrics(fold_model, prep.task, cfg.tune.metric)
        per_fold.append(score(fold_model, X.iloc[val_idx], y.iloc[val_idx], names))
    metrics = {n: float(np.mean([f[n] for f in per_fold])) for n in names}
    folds = [f[cfg.tune.metric] for f in per_fold]
    metrics[f"{cfg.tune.metric}_std"] = float(np.std(folds))
    model = clone(template).fit(X, y)
    return TrialOutcome(_finite(metrics[cfg.tune.metric], cfg.tune.metric), metrics, folds, model)


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise TrialFailed(f"metric {name} is {value}")
    return value
