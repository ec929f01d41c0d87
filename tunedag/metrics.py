"""Metrics by name: the task each fits, its direction, and how it is computed from a fitted model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

from tunedag.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    """A score of predictions; `needs` says which model output it reads."""

    task: str
    direction: str
    needs: str  # "predict" | "proba" | "score"
    fn: Callable[..., float]


def _f1(y, pred, sample_weight=None) -> float:
    labels = np.unique(np.concatenate([np.asarray(y), np.asarray(pred)]))
    if len(labels) <= 2:  # the positive class is the larger label, as in classes_[1] and roc_auc
        return skm.f1_score(y, pred, average="binary", pos_label=labels[-1], sample_weight=sample_weight)
    return skm.f1_score(y, pred, average="macro", sample_weight=sample_weight)


def _roc_auc(y, score, sample_weight=None) -> float:
    if score.ndim == 2 and score.shape[1] == 2:
        score = score[:, 1]
    multi = "ovr" if score.ndim == 2 else "raise"
    return skm.roc_auc_score(y, score, multi_class=multi, sample_weight=sample_weight)


def _rmse(y, pred, sample_weight=None) -> float:
    return skm.root_mean_squared_error(y, pred, sample_weight=sample_weight)


METRICS: dict[str, Metric] = {
    "accuracy": Metric("classification", "maximize", "predict", skm.accuracy_score),
    "balanced_accuracy": Metric("classification", "maximize", "predict", skm.balanced_accuracy_score),
    "f1": Metric("classification", "maximize", "predict", _f1),
    "roc_auc": Metric("classification", "maximize", "score", _roc_auc),
    "log_loss": Metric("classification", "minimize", "proba", skm.log_loss),
    "r2": Metric("regression", "maximize", "predict", skm.r2_score),
    "rmse": Metric("regression", "minimize", "predict", _rmse),
    "mae": Metric("regression", "minimize", "predict", skm.mean_absolute_error),
}


# Metrics of hard predictions whose value moves with the decision threshold of a binary classifier:
# under them the threshold is tuned (out-of-fold, on training rows) instead of left at 0.5.
THRESHOLD_METRICS = ("f1", "balanced_accuracy")


def threshold_scorer(metric: str, positive: Any) -> Any:
    """The scikit-learn scorer that tunes the threshold for `metric`; f1's positive class is the larger label, as in `score`."""
    if metric == "f1":
        return skm.make_scorer(skm.f1_score, pos_label=positive)
    return "balanced_accuracy"


def decision_threshold(model: Any) -> float | None:
    """The tuned decision threshold a fitted model applies to its positive-class score, or None (the default rule)."""
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    threshold = getattr(last, "best_threshold_", None)
    return None if threshold is None else float(threshold)


def metrics_for_task(task: str) -> list[str]:
    """Names of every metric that applies to `task`."""
    return [name for name, m in METRICS.items() if m.task == task]


def check_metric_for_task(metric: str, task: str) -> None:
    """Raise ConfigError when `metric` does not apply to `task`."""
    if METRICS[metric].task != task:
        raise ConfigError(
            f"tune.metric {metric!r} is a {METRICS[metric].task} metric but the task is {task}; "
            f"choose one of {', '.join(metrics_for_task(task))}"
        )


def usable_metrics(model: Any, task: str, primary: str | None) -> list[str]:
    """The configured metric (if given) plus every other metric of `task` that the model's outputs allow."""
    has_proba = hasattr(model, "predict_proba")
    binary = len(getattr(model, "classes_", ())) == 2
    allowed = {"predict": True, "proba": has_proba, "score": has_proba or (binary and hasattr(model, "decision_function"))}
    return [n for n in metrics_for_task(task) if n == primary or allowed[METRICS[n].needs]]


def score(model: Any, X: Any, y: Any, names: list[str], sample_weight: Any = None) -> dict[str, float]:
    """Compute each named metric of a fitted model on (X, y), computing each model output once; with `sample_weight`
    (data.weight) each metric weighs the rows by it (every metric here accepts sample_weight)."""
    weighted = {} if sample_weight is None else {"sample_weight": sample_weight}
    outputs: dict[str, Any] = {}
    out = {}
    for name in names:
        metric = METRICS[name]
        kind = _output_kind(model, metric.needs)
        if kind not in outputs:
            outputs[kind] = getattr(model, kind)(X)
        if metric.needs == "proba":
            out[name] = float(metric.fn(y, outputs[kind], labels=model.classes_, **weighted))
        else:
            out[name] = float(metric.fn(y, outputs[kind], **weighted))
    return out


def _output_kind(model: Any, needs: str) -> str:
    """The model method a metric reads: roc_auc and log_loss share one predict_proba pass."""
    if needs == "predict":
        return "predict"
    if hasattr(model, "predict_proba"):
        return "predict_proba"
    if needs == "score" and hasattr(model, "decision_function"):
        return "decision_function"
    name = type(model[-1] if hasattr(model, "steps") else model).__name__
    raise ConfigError(f"{name} has no predict_proba; choose a tune.metric that uses predictions (accuracy, f1, ...)")
