"""Your own training code as a model family: `train_fn: "package.module:function"` in params.yaml.

The contract (tested in tests/tunedag/nets/test_custom.py)::

    def train(params: dict, data: TrainData, reporter: TrialReporter) -> dict[str, float]

- `params`: the sampled search_space values merged over the family's `fixed` values; the names
  are free (no estimator checks them).
- `data`: the prepared splits as frames (see `TrainData`). While tuning, `X_val`/`y_val` is the
  validation split; in the final stage (`final_run`) the function is called again with the
  training and validation rows as `X_train` and the test rows as `X_val`, and `data.stage` is
  "final": the function must then only score `X_val`, never use it to stop or select.
- `reporter.report(step, value)` gives the pruner an intermediate value (steps from 1, the same
  direction as tune.metric); it raises `tunedag.objective.TrialPruned` when the pruner says stop:
  let it propagate. `reporter.log(step, {name: value})` records learning curves. Both are
  optional.
- The return value: a mapping of metric names to floats holding `tune.metric` (and any of
  `tune.objectives`), computed on `X_val`. It may instead return `(metrics, model)`; the model is
  handed back by `final_run` for the caller to keep, and ignored while tuning.

A `tune.metric` that is not one of tunedag's metrics is allowed here; then `tune.direction` must be
given. The function runs in the trial's worker, so it must seed itself from `data.seed`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from tunedag.config import Config
from tunedag.data import Prepared
from tunedag.errors import ConfigError
from tunedag.imports import import_named, takes_positional
from tunedag.objective import Reporter, TrialFailed, TrialOutcome, TrialPruned, TrialReporter
from tunedag.space import split_params

__all__ = [
    "FinalRun",
    "TrainData",
    "TrainFn",
    "TrialPruned",
    "TrialReporter",
    "evaluate_train_fn",
    "final_run",
    "resolve_train_fn",
]


@dataclass(frozen=True)
class TrainData:
    """The splits a train_fn gets: features as DataFrames (numeric and categorical columns), targets as Series."""

    X_train: pd.DataFrame
    y_train: pd.Series
    X_val: pd.DataFrame
    y_val: pd.Series
    task: str  # "classification" | "regression"
    seed: int
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    stage: str = "tune"  # "tune": X_val is the validation split; "final": X_val is the test split, score only


class TrainFn(Protocol):
    def __call__(self, params: dict[str, Any], data: TrainData, reporter: TrialReporter) -> Any: ...


@dataclass(frozen=True)
class FinalRun:
    """The final stage of a train_fn family: test metrics and the model the function returned, if any."""

    metrics: dict[str, float]
    model: Any = None


def resolve_train_fn(path: str, enforce: bool = False) -> Callable[..., Any]:
    """Import "package.module:function" (or "package.module.function"); ConfigError unless it is a Python
    function taking (params, data, reporter).

    With `enforce`, the module must be among the allowed ones (checked before importing, as when
    params.yaml is validated); the stages resolve validated paths without the config's list.
    """
    module_name, fn = import_named(path, "train_fn", "'mypackage.training:train'", enforce=enforce)
    if not inspect.isfunction(fn) or not takes_positional(fn, 3):
        raise ConfigError(
            f"train_fn {path!r} is not a function of {module_name} taking (params, data, reporter); it must be "
            "def train(params, data, reporter) -> dict of metrics"
        )
    return fn


def evaluate_train_fn(cfg: Config, prep: Prepared, params: dict[str, Any], reporter: Reporter | None) -> TrialOutcome:
    """Run the family's train_fn on train / validation; its metrics become the trial's (values set by the caller)."""
    family, own = split_params(params, cfg.families)
    data = _data(prep, cfg.seed, ("train",), ("val",), "tune")
    pruning = reporter if cfg.tune.fidelity.kind == "epochs" else None
    trial_reporter = TrialReporter(pruning)
    metrics, _ = _call(family.train_fn, {**family.fixed, **own}, data, trial_reporter, cfg)
    return TrialOutcome([], metrics, intermediate=trial_reporter.intermediate if pruning else [], curves=trial_reporter.curves)


def final_run(cfg: Config, prep: Prepared, params: dict[str, Any]) -> FinalRun:
    """Call the train_fn once more on train + validation with the chosen params; score the test split.

    Returns:
        The function's metrics on the test rows (keys as it names them) and its model, if it returned one.
    """
    family, own = split_params(params, cfg.families)
    data = _data(prep, cfg.seed, ("train", "val"), ("test",), "final")
    metrics, model = _call(family.train_fn, {**family.fixed, **own}, data, TrialReporter(None), cfg)
    return FinalRun(metrics, model)


def _data(prep: Prepared, seed: int, fit: tuple[str, ...], score: tuple[str, ...], stage: str) -> TrainData:
    X_train, y_train = prep.xy(*fit)
    X_val, y_val = prep.xy(*score)
    return TrainData(X_train, y_train, X_val, y_val, prep.task, seed, prep.numeric, prep.categorical, stage)


def _call(
    path: str, params: dict[str, Any], data: TrainData, reporter: TrialReporter, cfg: Config
) -> tuple[dict[str, float], Any]:
    result = resolve_train_fn(path)(params, data, reporter)
    metrics, model = result if isinstance(result, tuple) and len(result) == 2 else (result, None)
    if not isinstance(metrics, Mapping):
        raise TrialFailed(f"train_fn {path} returned {type(metrics).__name__}; it must return a dict of metrics")
    needed = [cfg.tune.metric, *cfg.tune.objectives]
    missing = [m for m in needed if m not in metrics]
    if missing:
        raise TrialFailed(f"train_fn {path} returned metrics {sorted(metrics)} without {missing} (tune.metric / tune.objectives)")
    try:
        return {str(k): float(v) for k, v in metrics.items()}, model
    except (TypeError, ValueError):
        raise TrialFailed(f"train_fn {path} returned a metric that is not a number: {dict(metrics)}") from None
