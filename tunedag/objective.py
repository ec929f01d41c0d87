"""The objective: fit one configuration and score it on validation data, never on test.

With a fidelity set in `tune.fidelity`, the objective reports an intermediate value at each
step (CV fold, training fraction, or ensemble size) to a `Reporter`, which may stop it early.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    TimeSeriesSplit,
    TunedThresholdClassifierCV,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from tunedag.config import EXTRA_OBJECTIVES, Config
from tunedag.data import SPLIT, Prepared
from tunedag.errors import ConfigError, DataError
from tunedag.estimators import (
    build_model,
    estimator_param_names,
    fit_takes_on_epoch,
    is_torch_estimator,
    is_torch_estimator_instance,
    resolve_estimator,
)
from tunedag.metrics import THRESHOLD_METRICS, score, threshold_scorer, usable_metrics
from tunedag.space import split_params

# (step, intermediate value) -> True when the trial should stop; steps count from 1.
Reporter = Callable[[int, float], bool]


class TrialFailed(Exception):
    """A configuration could not be evaluated; the study records it as failed and goes on."""


class TrialPruned(Exception):
    """The reporter stopped the trial at `step`; `intermediate` holds the values reported so far.

    `curves` holds the per-epoch series recorded before the stop (empty for other fidelities).
    """

    def __init__(self, step: int, intermediate: list[float], curves: dict[str, list[float]] | None = None):
        super().__init__(f"pruned at step {step}")
        self.step = step
        self.intermediate = intermediate
        self.curves = curves or {}


class TrialReporter:
    """What a trial reports while it trains: intermediate values for the pruner and learning curves.

    `report(step, value)` records an intermediate value and raises `TrialPruned` when the study's
    pruner says stop (never at `last_step`, where the trial is complete anyway). `log(step, metrics)`
    records each named value as a curve: `curves[name][step - 1]`, steps counted from 1.
    """

    def __init__(self, reporter: Reporter | None = None, last_step: int | None = None):
        self._reporter, self._last = reporter, last_step
        self.intermediate: list[float] = []
        self.curves: dict[str, list[float]] = {}

    def report(self, step: int, value: float) -> None:
        self.intermediate.append(_finite(float(value), "intermediate value"))
        stop = self._reporter is not None and self._reporter(step, float(value))
        if stop and (self._last is None or step < self._last):
            raise TrialPruned(step, list(self.intermediate), {k: list(v) for k, v in self.curves.items()})

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            series = self.curves.setdefault(name, [])
            series.extend([math.nan] * (step - 1 - len(series)))
            series.append(float(value))


@dataclass
class TrialOutcome:
    """Objective values ([tune.metric, *tune.objectives]), every validation metric, and the fitted model."""

    values: list[float]
    metrics: dict[str, float]
    fold_values: list[float] = field(default_factory=list)
    intermediate: list[float] = field(default_factory=list)
    model: Pipeline | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)  # per-epoch series, epoch 1 first

    @property
    def value(self) -> float:
        return self.values[0]


def make_model(cfg: Config, prep: Prepared, params: dict[str, Any]) -> Pipeline:
    """The preprocessing + estimator pipeline for a configuration, seeded from `cfg.seed`."""
    family, own = split_params(params, cfg.families)
    if family.train_fn:
        raise TrialFailed(f"model family with train_fn {family.train_fn} has no estimator pipeline; use tunedag.custom")
    if prep.categorical and is_torch_estimator(family.estimator):
        raise DataError(
            f"{family.estimator} takes numeric columns only, but the data has categorical columns "
            f"{list(prep.categorical)[:10]}; encode them as numbers in the data or choose another estimator."
        )
    fixed = dict(family.fixed)
    if "random_state" in estimator_param_names(family.estimator) and "random_state" not in own:
        fixed.setdefault("random_state", cfg.seed)
    model = build_model(family.estimator, fixed, own, prep.numeric, prep.categorical, cfg.model.preprocess)
    return _with_tuned_threshold(cfg, prep, model)


def check_weight_support(cfg: Config) -> None:
    """Refuse `data.weight` unless every model family's estimator takes `sample_weight` in fit, before the first trial."""
    if cfg.data.weight is None:
        return
    if cfg.final.ensemble.kind != "none":
        raise ConfigError(
            f"data.weight ({cfg.data.weight!r}) cannot be passed through final.ensemble.kind {cfg.final.ensemble.kind} "
            "(its members are pipelines, which take no sample_weight from an ensemble); set final.ensemble.kind: none or unset data.weight."
        )
    for name, family in cfg.families.items():
        label = f"model family {name!r}" if name else "model.estimator"
        if family.train_fn or not has_fit_parameter(resolve_estimator(family.estimator), "sample_weight"):
            raise ConfigError(
                f"data.weight ({cfg.data.weight!r}) needs estimators whose fit takes sample_weight, but {label} "
                f"({family.estimator or family.train_fn}) does not; unset data.weight or choose another estimator."
            )


def check_roles(cfg: Config, prep: Prepared) -> None:
    """What the tune stage refuses before the first trial about the column roles: `data.weight` an estimator cannot
    take, or fewer `data.group` groups in the train + val rows than `data.cv_folds`."""
    check_weight_support(cfg)
    if cfg.data.cv_folds >= 2 and prep.group is not None:
        cv_splits(cfg, prep, *prep.xy("train", "val"))


def fit_weighted(model: Any, X: Any, y: Any, weight: np.ndarray | None = None, **fit_params: Any) -> Any:
    """`model.fit(X, y)`, with `weight` as the final step's `sample_weight` (`<step>__sample_weight` in a Pipeline)."""
    if weight is not None:
        fit_params[f"{model.steps[-1][0]}__sample_weight" if hasattr(model, "steps") else "sample_weight"] = weight
    return model.fit(X, y, **fit_params)


def _with_tuned_threshold(cfg: Config, prep: Prepared, model: Pipeline) -> Pipeline:
    """Under a threshold metric on two classes, the estimator's decision threshold is tuned by 3-fold CV on the rows it
    is fitted on (scikit-learn's TunedThresholdClassifierCV) and saved with it; other metrics keep the estimator as is.

    Under `data.time` its folds are TimeSeriesSplit's (forward only: the rows are in time order). Not under
    `data.weight` (TunedThresholdClassifierCV passes sample_weight on only under scikit-learn's global metadata
    routing) nor `data.group` (its inner folds would take groups by the same routing, else mix them)."""
    labels = sorted(prep.frame[prep.target].dropna().unique())
    estimator = model.named_steps["model"]
    if (
        cfg.tune.metric not in THRESHOLD_METRICS
        or prep.weight is not None
        or prep.group is not None
        or len(labels) != 2
        or cfg.tune.fidelity.kind not in ("none", "folds")
        or not hasattr(estimator, "predict_proba")
        or is_torch_estimator_instance(estimator)
    ):
        return model
    scoring = threshold_scorer(cfg.tune.metric, labels[-1].item() if hasattr(labels[-1], "item") else labels[-1])
    cv = TimeSeriesSplit(n_splits=3) if prep.time is not None else 3
    return model.set_params(model=TunedThresholdClassifierCV(estimator, scoring=scoring, cv=cv))


def evaluate(cfg: Config, prep: Prepared, params: dict[str, Any], reporter: Reporter | None = None) -> TrialOutcome:
    """Score a configuration by `tune.metric` (and `tune.objectives`) on validation data or by CV."""
    family, _ = split_params(params, cfg.families)
    if family.train_fn:
        from tunedag.custom import evaluate_train_fn

        outcome = evaluate_train_fn(cfg, prep, params, reporter)
    elif cfg.data.cv_folds >= 2:
        outcome = _cross_validate(cfg, prep, params, reporter)
    elif cfg.tune.fidelity.kind == "train_fraction":
        outcome = _by_train_fraction(cfg, prep, params, reporter)
    elif cfg.tune.fidelity.kind == "ensemble_size":
        outcome = _by_ensemble_size(cfg, prep, params, reporter)
    else:
        model = make_model(cfg, prep, params)
        epochs = _epoch_reporter(cfg, model, reporter)
        fit_weighted(model, *prep.xy("train"), prep.weights("train"), **_epoch_fit_params(cfg, model, epochs))
        outcome = TrialOutcome([], _score_val(cfg, prep, model), model=model)
        outcome.intermediate, outcome.curves = (epochs.intermediate, epochs.curves) if epochs else ([], {})
    outcome.values = _objective_values(cfg, prep, outcome)
    return outcome


def _epoch_reporter(cfg: Config, model: Pipeline, reporter: Reporter | None) -> TrialReporter | None:
    """A TrialReporter for an estimator whose fit takes `on_epoch`; it prunes only with fidelity `epochs`."""
    if not fit_takes_on_epoch(type(model.steps[-1][1])):
        return None
    pruning = reporter if cfg.tune.fidelity.kind == "epochs" else None
    return TrialReporter(pruning, last_step=model.steps[-1][1].get_params().get("epochs"))


def _epoch_fit_params(cfg: Config, model: Pipeline, epochs: TrialReporter | None) -> dict[str, Any]:
    """`model__on_epoch`: record every epoch's metrics and, with fidelity `epochs`, report one value."""
    if epochs is None:
        return {}
    step_name = model.steps[-1][0]
    prune = cfg.tune.fidelity.kind == "epochs"

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        epochs.log(epoch, metrics)
        if prune:
            epochs.report(epoch, epoch_value(cfg.tune.metric, cfg.tune.resolved_direction, metrics))

    return {f"{step_name}__on_epoch": on_epoch}


def epoch_value(metric: str, direction: str, metrics: dict[str, float]) -> float:
    """The intermediate value of an epoch: `val_<tune.metric>` when the estimator reports it (log_loss is its
    val_loss), else the validation loss, negated when tune.metric is maximised so that larger stays better."""
    key = "val_loss" if metric == "log_loss" else f"val_{metric}"
    if key in metrics:
        return metrics[key]
    if "val_loss" not in metrics:
        raise TrialFailed(
            "fidelity epochs needs the estimator's validation split (validation_fraction > 0); "
            f"its epochs reported only {sorted(metrics)}"
        )
    return -metrics["val_loss"] if direction == "maximize" else metrics["val_loss"]


def _score_val(cfg: Config, prep: Prepared, model: Pipeline, every_metric: bool = True) -> dict[str, float]:
    """Validation metrics; an intermediate fidelity step needs only `tune.metric`."""
    X_val, y_val = prep.xy("val")
    names = usable_metrics(model, prep.task, cfg.tune.metric) if every_metric else [cfg.tune.metric]
    return score(model, X_val, y_val, names, prep.weights("val"))


def _step(reporter: Reporter | None, step: int, last: int, value: float, seen: list[float]) -> None:
    """Record an intermediate value; stop the trial if the reporter says so before the last step."""
    seen.append(_finite(value, "intermediate value"))
    if reporter is not None and reporter(step, value) and step < last:
        raise TrialPruned(step, seen)


def _by_train_fraction(cfg: Config, prep: Prepared, params: dict[str, Any], reporter: Reporter | None) -> TrialOutcome:
    X, y = prep.xy("train")
    w = prep.weights("train")
    fractions, seen = cfg.tune.fidelity.fractions, []
    stratify = y if prep.task == "classification" else None
    for step, fraction in enumerate(fractions, 1):
        if fraction >= 1:
            X_part, y_part, w_part = X, y, w
        else:
            index = train_test_split(np.arange(len(y)), train_size=fraction, random_state=cfg.seed, stratify=stratify)[0]
            X_part, y_part, w_part = X.iloc[index], y.iloc[index], None if w is None else w[index]
        model = fit_weighted(make_model(cfg, prep, params), X_part, y_part, w_part)
        metrics = _score_val(cfg, prep, model, every_metric=step == len(fractions))
        _step(reporter, step, len(fractions), metrics[cfg.tune.metric], seen)
    return TrialOutcome([], metrics, intermediate=seen, model=model)


def _by_ensemble_size(cfg: Config, prep: Prepared, params: dict[str, Any], reporter: Reporter | None) -> TrialOutcome:
    fid, seen = cfg.tune.fidelity, []
    model = make_model(cfg, prep, params)
    total = int(model.named_steps["model"].get_params()[fid.param])
    sizes = sorted({max(1, math.ceil(total * i / fid.steps)) for i in range(1, fid.steps + 1)})
    X, y = prep.xy("train")
    for step, size in enumerate(sizes, 1):
        fit_weighted(model.set_params(**{f"model__{fid.param}": size, "model__warm_start": True}), X, y, prep.weights("train"))
        metrics = _score_val(cfg, prep, model, every_metric=step == len(sizes))
        _step(reporter, step, len(sizes), metrics[cfg.tune.metric], seen)
    return TrialOutcome([], metrics, intermediate=seen, model=model)


def _cross_validate(cfg: Config, prep: Prepared, params: dict[str, Any], reporter: Reporter | None) -> TrialOutcome:
    X, y = prep.xy("train", "val")  # every row but the test rows: the validation split has no other use under CV
    w = prep.weights("train", "val")
    template, metric = make_model(cfg, prep, params), cfg.tune.metric
    names: list[str] = []
    per_fold: list[dict[str, float]] = []
    seen: list[float] = []
    fold_reporter = reporter if cfg.tune.fidelity.kind == "folds" else None
    for step, (train_idx, val_idx) in enumerate(cv_splits(cfg, prep, X, y), 1):
        fold_model = fit_weighted(clone(template), X.iloc[train_idx], y.iloc[train_idx], None if w is None else w[train_idx])
        names = names or usable_metrics(fold_model, prep.task, metric)
        per_fold.append(score(fold_model, X.iloc[val_idx], y.iloc[val_idx], names, None if w is None else w[val_idx]))
        _step(fold_reporter, step, cfg.data.cv_folds, float(np.mean([f[metric] for f in per_fold])), seen)
    metrics = {n: float(np.mean([f[n] for f in per_fold])) for n in names}
    folds = [f[metric] for f in per_fold]
    metrics[f"{metric}_std"] = float(np.std(folds))
    model = fit_weighted(clone(template), X, y, w)
    return TrialOutcome([], metrics, folds, seen if fold_reporter else [], model)


def cv_splits(cfg: Config, prep: Prepared, X: Any, y: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, validation) row positions of each CV fold over the train + val rows `X`, `y` (`prep.xy("train", "val")`).

    Under `data.group` no group is on both sides of a fold (StratifiedGroupKFold for classification, GroupKFold);
    under `data.time` each fold validates on rows later than all its training rows (TimeSeriesSplit; the rows are
    in time order); otherwise (Stratified)KFold, shuffled with `cfg.seed`.
    """
    k = cfg.data.cv_folds
    if prep.group is not None:
        groups = prep.groups("train", "val")
        if len(np.unique(groups)) < k:
            raise DataError(
                f"data.group column {prep.group!r} has {len(np.unique(groups))} groups in the train and validation rows, "
                f"fewer than data.cv_folds ({k}); lower data.cv_folds or give the data more groups."
            )
        splitter_cls = StratifiedGroupKFold if prep.task == "classification" else GroupKFold
        return list(splitter_cls(n_splits=k, shuffle=True, random_state=cfg.seed).split(X, y, groups))
    if prep.time is not None:
        if len(y) <= k:
            raise DataError(f"data.time: {len(y)} train and validation rows are too few for data.cv_folds ({k}) ordered folds.")
        return list(TimeSeriesSplit(n_splits=k).split(X, y))
    splitter_cls = StratifiedKFold if prep.task == "classification" else KFold
    return list(splitter_cls(n_splits=k, shuffle=True, random_state=cfg.seed).split(X, y))


def _objective_values(cfg: Config, prep: Prepared, outcome: TrialOutcome) -> list[float]:
    values = [_finite(outcome.metrics[cfg.tune.metric], cfg.tune.metric)]
    for name in cfg.tune.objectives:
        if name in EXTRA_OBJECTIVES:
            outcome.metrics[name] = _extra_objective(name, outcome.model, prep)
        elif name not in outcome.metrics:
            raise TrialFailed(f"objective {name} cannot be computed from this model's outputs")
        values.append(_finite(outcome.metrics[name], name))
    return values


def _extra_objective(name: str, model: Pipeline, prep: Prepared) -> float:
    """Prediction latency (median ms per 1,000 validation rows, over 3 runs) or model size (kB)."""
    if name == "model_size_kb" and is_torch_estimator_instance(model.steps[-1][1]):
        from tunedag.nets._modules import parameter_bytes

        return parameter_bytes(model.steps[-1][1].module_) / 1024
    if name == "model_size_kb":  # its serialised size; the skops file tunedag saves is within a few percent
        return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / 1024
    X_val, _ = prep.xy("val") if (prep.frame[SPLIT] == "val").any() else prep.xy("train")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.predict(X_val)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 * 1000 / max(len(X_val), 1)


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise TrialFailed(f"metric {name} is {value}")
    return value
