"""Checks of a model family against its estimator before the first trial.

A family's fixed arguments and every bound and choice of its search space are set on the
estimator and checked against the constraints the estimator declares (what its `fit` checks
first), so a classifier's `criterion` on a regressor, or `n_jobs` on an estimator without it,
is refused once, naming the key, instead of failing every trial that draws it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from compat.sklearn import validate_params
from tunedag.estimators import estimator_param_names, resolve_estimator


def check_family(
    estimator: str, fixed: dict[str, Any], space: dict[str, Any], prefix: str = "search_space.", fixed_key: str = "fixed"
) -> None:
    """Raise ValueError naming the key (`<fixed_key>.<name>` or `<prefix><name>`) of the first argument the estimator refuses.

    Args:
        estimator: The estimator's import path.
        fixed: Its fixed constructor arguments.
        space: The search space by parameter name (tunedag.config params: `low`/`high` or `choices`).
        prefix: How the space's keys are named in messages, e.g. "search_space.".
        fixed_key: How the fixed arguments are named in messages, e.g. "model.fixed".
    """
    cls = resolve_estimator(estimator)
    accepted = estimator_param_names(estimator)
    unknown = sorted(set(fixed) - accepted)
    if unknown:
        raise ValueError(
            f"{fixed_key}.{unknown[0]} is not an argument of {cls.__name__} (it takes {', '.join(sorted(accepted))})"
        )
    for name, value in fixed.items():
        _check_value(cls, fixed, name, value, f"{fixed_key}.{name}")
    for name, param in space.items():
        if name not in accepted:
            continue  # the caller names it (not a parameter of the estimator)
        for value in _candidates(param):
            _check_value(cls, fixed, name, value, f"{prefix}{name}")


def _candidates(param: Any) -> Iterable[Any]:
    """The values worth checking: each choice, or both bounds of a range."""
    if hasattr(param, "choices"):
        return param.choices
    return (param.low, param.high)


def _check_value(cls: type, fixed: dict[str, Any], name: str, value: Any, key: str) -> None:
    try:
        validate_params(cls(**{**fixed, name: value}))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{key}: {value!r} is refused by {cls.__name__}: {' '.join(str(exc).split())}") from None
