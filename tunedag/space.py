"""The search space from config as Optuna distributions, and as a grid for the grid sampler."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from compat.optuna import distribution_contains
from tunedag.config import CategoricalParam, Config, Family, FloatParam, IntParam, Param
from tunedag.errors import SearchSpaceError

FAMILY = "family"

MAX_GRID_POINTS = 100_000


def distributions(space: dict[str, Param]) -> dict[str, BaseDistribution]:
    """One Optuna distribution per parameter, in config order."""
    return {name: _distribution(p) for name, p in space.items()}


def _distribution(p: Param) -> BaseDistribution:
    if isinstance(p, FloatParam):
        return FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    if isinstance(p, IntParam):
        return IntDistribution(p.low, p.high, log=p.log, step=p.step)
    return CategoricalDistribution(p.choices)


def suggest(trial: Any, families: dict[str, Family]) -> dict[str, Any]:
    """Sample one configuration define-by-run on an Optuna trial (conditional parameters included).

    With several families the trial first chooses `family`, and each family's parameters are
    named `<family>.<param>`; a parameter with `when` is sampled only if its parents match.
    """
    params: dict[str, Any] = {}
    name = next(iter(families))
    if len(families) > 1:
        name = params[FAMILY] = trial.suggest_categorical(FAMILY, list(families))
    prefix = f"{name}." if name else ""
    for key, p in families[name].space.items():
        if all(params.get(prefix + parent) in values for parent, values in p.when.items()):
            params[prefix + key] = _suggest_one(trial, prefix + key, p)
    return params


def _suggest_one(trial: Any, name: str, p: Param) -> Any:
    if isinstance(p, FloatParam):
        return trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
    if isinstance(p, IntParam):
        return trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)
    return trial.suggest_categorical(name, p.choices)


def split_params(params: dict[str, Any], families: dict[str, Family]) -> tuple[Family, dict[str, Any]]:
    """The family a configuration belongs to and its estimator arguments (prefixes removed)."""
    name = params.get(FAMILY, next(iter(families)))
    if name not in families:
        raise SearchSpaceError(f"configuration names family {name!r}, which model.families does not declare")
    prefix = f"{name}." if name else ""
    own = {k.removeprefix(prefix): v for k, v in params.items() if k != FAMILY and k.startswith(prefix)}
    return families[name], own


def check_configuration(params: dict[str, Any], cfg: Config, key: str) -> None:
    """Refuse a configuration (from tune.enqueue or a warm start) with names outside the space."""
    family, own = split_params(params, cfg.families)
    unknown = sorted(set(own) - set(family.space) - set(family.fixed))
    if unknown:
        raise SearchSpaceError(f"{key}: {unknown} are not in the search space of {family.estimator}")


def grid(space: dict[str, Param]) -> dict[str, list[Any]]:
    """Every value of every parameter, for exhaustive search; refuse a space with no finite grid."""
    size = grid_size(space)
    if size > MAX_GRID_POINTS:
        raise SearchSpaceError(
            f"search_space has {size} grid points, more than {MAX_GRID_POINTS}; use a larger step or tune.sampler: random or tpe"
        )
    return {name: _grid_values(p) for name, p in space.items()}


def grid_size(space: dict[str, Param]) -> int:
    """How many points the grid has, counted without building it."""
    return math.prod(_grid_count(name, p) for name, p in space.items())


def _grid_count(name: str, p: Param) -> int:
    if not isinstance(p, CategoricalParam) and p.log:
        raise SearchSpaceError(
            f"search_space.{name}: a log-scale {p.type} cannot be searched on a grid; drop log and set step, or list choices"
        )
    if (count := _count(p)) is None:
        raise SearchSpaceError(
            f"search_space.{name}: the grid sampler needs a step for a float (or use type: categorical with choices)"
        )
    return count


def space_size(families: dict[str, Family]) -> int | None:
    """How many distinct configurations the space holds, or None when that is infinite or not counted here.

    None for a float without a step, and for a space with conditional parameters (`when`), whose
    count depends on their parents' values. A family without parameters is one configuration.
    """
    total = 0
    for family in families.values():
        counts = [None if p.when else _count(p) for p in family.space.values()]
        if None in counts:
            return None
        total += math.prod(counts)
    return total


def _count(p: Param) -> int | None:
    if isinstance(p, CategoricalParam):
        return len(p.choices)
    if isinstance(p, IntParam):
        return (p.high - p.low) // p.step + 1
    return None if p.step is None else int(math.floor((p.high - p.low) / p.step + 1e-9)) + 1


def _grid_values(p: Param) -> list[Any]:
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, IntParam):
        return list(range(p.low, p.high + 1, p.step))
    return [float(v) for v in np.round(p.low + p.step * np.arange(_grid_count("", p)), 12)]


def is_complete(params: dict[str, Any], families: dict[str, Family]) -> bool:
    """Whether `params` is a whole configuration of the space (every active parameter set)."""
    from optuna.trial import FixedTrial

    try:
        return suggest(FixedTrial(params), families) == params
    except (ValueError, KeyError):
        return False


def fit_to_space(params: dict[str, Any], families: dict[str, Family]) -> dict[str, Any]:
    """The part of a configuration that the current space can take (names known, values in range)."""
    family_name = params.get(FAMILY, next(iter(families)))
    if family_name not in families:
        return {}
    prefix = f"{family_name}." if family_name else ""
    space = families[family_name].space
    kept = {FAMILY: family_name} if len(families) > 1 else {}
    for key, value in params.items():
        name = key.removeprefix(prefix)
        if key.startswith(prefix) and name in space and _fits(space[name], value):
            kept[key] = value
    return kept


def _fits(p: Param, value: Any) -> bool:
    """Whether `value` lies in the parameter's distribution; a categorical value that is no longer a choice does not."""
    dist = _distribution(p)
    try:
        return distribution_contains(dist, value)
    except (ValueError, TypeError):  # not among the choices, or not a number
        return False
