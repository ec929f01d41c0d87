"""The default a user gets from `data:` alone: the task, the metric, the validation scheme and a space over model families.

When params.yaml leaves `model:` and `search_space:` out (or writes `model: {preset: auto}`), tunedag
searches three families in the task's form: a linear model, histogram gradient boosting and a
random forest. Each family's space contains the estimator's own defaults with ranges reaching
beyond them, and the first trials are those defaults (queued in `tune.enqueue`), so the tuned
model starts from what an untuned scikit-learn model scores. `tune.metric: auto` and
`data.cv_folds: auto` are resolved here too. Everything is written back into the raw config
before validation, so the validated Config is explicit and validating its dump again changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from tunedag.estimators import check_estimator_path, resolve_estimator

log = logging.getLogger(__name__)

# Tables with fewer rows for selection (train + val) than this are cross-validated (k-fold), larger ones use one split.
CV_ROWS = 2000
CV_FOLDS = 5
AUTO_METRIC = {"classification": "roc_auc", "regression": "r2"}
_SKLEARN_TASKS = {"diabetes": "regression"}  # the other bundled datasets are classification tables

_LOG_FLOAT = {"type": "float", "log": True}
_BOOSTING = {
    "learning_rate": {**_LOG_FLOAT, "low": 0.01, "high": 0.5},
    "max_iter": {"type": "int", "low": 50, "high": 500, "log": True},
    "max_leaf_nodes": {"type": "int", "low": 8, "high": 128, "log": True},
    "min_samples_leaf": {"type": "int", "low": 2, "high": 100, "log": True},
    "l2_regularization": {"type": "float", "low": 0.0, "high": 10.0},
    "max_features": {"type": "float", "low": 0.3, "high": 1.0},
}
_FOREST = {
    "n_estimators": {"type": "int", "low": 50, "high": 400, "log": True},
    "max_depth": {"type": "categorical", "choices": [None, 4, 8, 16, 32]},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},
}
_WEIGHTS = {"type": "categorical", "choices": [None, "balanced"]}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "classification": {
        "linear": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "fixed": {"max_iter": 1000},
            "search_space": {"C": {**_LOG_FLOAT, "low": 1e-3, "high": 1e3}, "class_weight": _WEIGHTS},
        },
        "hgb": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "fixed": {},
            "search_space": {**_BOOSTING, "class_weight": _WEIGHTS},
        },
        "rf": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "fixed": {"n_jobs": 1},
            "search_space": {
                **_FOREST,
                "max_features": {"type": "categorical", "choices": ["sqrt", "log2", 0.5, 1.0]},
                "class_weight": {"type": "categorical", "choices": [None, "balanced", "balanced_subsample"]},
            },
        },
    },
    "regression": {
        "linear": {
            "estimator": "sklearn.linear_model.Ridge",
            "fixed": {},
            "search_space": {"alpha": {**_LOG_FLOAT, "low": 1e-3, "high": 1e3}},
        },
        "hgb": {"estimator": "sklearn.ensemble.HistGradientBoostingRegressor", "fixed": {}, "search_space": dict(_BOOSTING)},
        "rf": {
            "estimator": "sklearn.ensemble.RandomForestRegressor",
            "fixed": {"n_jobs": 1},
            "search_space": {**_FOREST, "max_features": {"type": "categorical", "choices": [1.0, "sqrt", 0.5, 0.33]}},
        },
    },
}


def preset_families(task: str) -> dict[str, dict[str, Any]]:
    """The families of the `task`'s preset, as `model.families` takes them (a fresh copy)."""
    import copy

    return copy.deepcopy(PRESETS[task])


def default_configurations(families: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One configuration per family holding the estimator's own default for each tuned parameter (family order)."""
    configs = []
    for name, family in families.items():
        defaults = resolve_estimator(family["estimator"])(**family["fixed"]).get_params()
        configs.append({"family": name, **{f"{name}.{p}": defaults[p] for p in family["search_space"]}})
    return configs


def expand(raw: Any) -> Any:
    """Resolve the preset, `tune.metric: auto` and `data.cv_folds: auto` in a raw params mapping (returned changed).

    Anything invalid is left as it is for the schema to refuse with its own message.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        return raw
    from pydantic import ValidationError

    from tunedag.config import DataConfig

    try:
        data = DataConfig.model_validate(raw["data"])
    except ValidationError:
        return raw
    raw = dict(raw)
    model = raw.get("model")
    model = dict(model) if isinstance(model, dict) else ({} if model is None else model)
    if not isinstance(raw.get("tune", {}), dict):
        return raw
    tune = dict(raw.get("tune") or {})
    use_preset = (
        isinstance(model, dict)
        and model.pop("preset", "auto") == "auto"
        and not ({"estimator", "train_fn", "families"} & set(model) or raw.get("search_space"))
    )
    needs_task = use_preset or tune.get("metric", "auto") == "auto"
    task = task_of(data, raw, model) if needs_task else None
    if use_preset:
        model["families"] = preset_families(task)
        tune["enqueue"] = default_configurations(model["families"]) + list(tune.get("enqueue") or [])
    if use_preset or "model" in raw:  # a missing model beside a search_space stays missing, for the schema to name
        raw["model"] = model
    if data.task == "auto" and (task or data.source == "sklearn"):  # an explicit data.task is checked against the metric first
        _check_estimators_for_task(model, task or task_of(data, raw, {}))
    if tune.get("metric", "auto") == "auto":
        tune["metric"] = AUTO_METRIC[task]
    raw["tune"] = tune
    if data.cv_folds == "auto":
        raw["data"] = {**raw["data"], "cv_folds": auto_cv_folds(data, raw)}
    return raw


def task_of(data: Any, raw: dict[str, Any], model: Any) -> str:
    """The task from data.task, the bundled dataset, an explicit estimator, or else the target column of the file."""
    if data.task != "auto":
        return data.task
    if data.source == "sklearn":
        return _SKLEARN_TASKS.get(data.name, "classification")
    if data.source == "npz":
        return "classification"
    estimator = model.get("estimator") if isinstance(model, dict) else None
    if isinstance(estimator, str):
        from tunedag.estimators import estimator_kind

        kind = estimator_kind(estimator, {})
        if kind != "unknown":
            return kind
    from tunedag.data import infer_task

    return infer_task(_target_column(data))


def _check_estimators_for_task(model: Any, task: str) -> None:
    """Refuse an explicit estimator of the other task (a regressor for classes) before its arguments are checked."""
    from tunedag.errors import ConfigError
    from tunedag.estimators import check_estimator_for_task

    if not isinstance(model, dict):
        return
    families = model.get("families") if isinstance(model.get("families"), dict) else {}
    for family in [model, *(f for f in families.values() if isinstance(f, dict))]:
        estimator = family.get("estimator")
        if not isinstance(estimator, str):
            continue
        try:
            check_estimator_path(estimator)  # the allow-list first: nothing outside it is imported
            resolve_estimator(estimator)(**{})
        except (ConfigError, TypeError):
            continue  # the schema names a bad path or argument, beside any other error
        check_estimator_for_task(estimator, {}, task)


def auto_cv_folds(data: Any, raw: dict[str, Any]) -> int:
    """k-fold for a small table, one validation split for a large one (or where the fidelity or a train_fn needs it)."""
    tune = raw.get("tune") or {}
    fidelity = (tune.get("fidelity") or {}).get("kind", "none") if isinstance(tune, dict) else "none"
    if fidelity == "folds":
        return CV_FOLDS
    if fidelity in ("train_fraction", "ensemble_size", "epochs") or data.source == "npz" or _has_train_fn(raw.get("model")):
        return 0
    rows = int(_row_count(data) * (1 - data.test_size))
    folds = CV_FOLDS if rows < CV_ROWS else 0
    log.info(
        "data.cv_folds auto: %s (%d rows for selection, %s %d)",
        f"{folds}-fold cross-validation" if folds else "one validation split",
        rows,
        "under" if folds else "at least",
        CV_ROWS,
    )
    return folds


def _has_train_fn(model: Any) -> bool:
    if not isinstance(model, dict):
        return False
    families = model.get("families") if isinstance(model.get("families"), dict) else {}
    return bool(model.get("train_fn")) or any(isinstance(f, dict) and f.get("train_fn") for f in families.values())


def _row_count(data: Any) -> int:
    if data.source == "synthetic":
        return data.synthetic.n_samples
    if data.source == "sklearn":
        from sklearn import datasets

        return len(getattr(datasets, f"load_{data.name}")(return_X_y=True)[1])
    return len(_target_column(data))


def _target_column(data: Any) -> Any:
    """The file's target column (read alone where the format allows), to choose the task and count rows."""
    import pandas as pd

    path = data.path
    if not path.is_file():
        raise ValueError(
            f"data.path {path} does not exist; tunedag reads its target column to choose the task, "
            "metric and validation (set data.task, tune.metric and data.cv_folds to skip that)"
        )
    try:
        if path.suffix.lower() == ".csv":
            column = pd.read_csv(path, usecols=[data.target])[data.target]
        else:
            column = pd.read_parquet(path, columns=[data.target])[data.target]
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"data.target {data.target!r} cannot be read from {path}: {' '.join(str(exc).split())}") from None
    return column.dropna()


def untuned_family(params: dict[str, Any], families: dict[str, Any]) -> str | None:
    """The family whose estimator's own defaults `params` are (an untuned baseline), or None for a tuned configuration.

    Args:
        params: A trial's parameters (`family` and `<family>.<name>` keys with several families).
        families: `Config.families` (a single-model config is one family named "").

    Returns:
        The family's name ("" for a single model) when every tuned parameter holds the estimator's
        default with the family's fixed arguments; None otherwise, or for a train_fn family.
    """
    from tunedag.space import split_params

    try:
        family, own = split_params(params, families)
    except ValueError:
        return None
    if family.estimator is None:
        return None
    defaults = resolve_estimator(family.estimator)(**family.fixed).get_params()
    if not own or any(name not in defaults or not _same(value, defaults[name]) for name, value in own.items()):
        return None
    return next(name for name, f in families.items() if f is family)


def _same(a: Any, b: Any) -> bool:
    """Equal, counting numbers equal up to float rounding (Optuna stores a queued 0.1 as a float)."""
    import math

    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return type(a) is type(b) and a == b
