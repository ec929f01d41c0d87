"""The search space from config as Optuna distributions, and as a grid for the grid sampler."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from tunedag.config import CategoricalParam, FloatParam, IntParam, Param
from tunedag.errors import SearchSpaceError

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


def grid(space: dict[str, Param]) -> dict[str, list[Any]]:
    """Every value of every parameter, for exhaustive search; refuse a space with no finite grid."""
    size = grid_size(space)
    if size > MAX_GRID_POINTS:
        raise SearchSpaceError(f"search_space has {size} grid points, more than {MAX_GRID_POINTS}; use a larger step or tune.sampler: random or tpe")
    return {name: _grid_values(p) for name, p in space.items()}


def grid_size(space: dict[str, Param]) -> int:
    """How many points the grid has, counted without building it."""
    return math.prod(_grid_count(name, p) for name, p in space.items())


def _grid_count(name: str, p: Param) -> int:
    if isinstance(p, CategoricalParam):
        return len(p.choices)
    if p.log:
        raise SearchSpaceError(f"search_space.{name}: a log-scale {p.type} cannot be searched on a grid; drop log and set step, or list choices")
    if p.step is None:
        raise SearchSpaceError(f"search_space.{name}: the grid sampler needs a step for a float (or use type: categorical with choices)")
    return int(math.floor((p.high - p.low) / p.step + 1e-9)) + 1


def _grid_values(p: Param) -> list[Any]:
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, IntParam):
        return list(range(p.low, p.high + 1, p.step))
    return [float(v) for v in np.round(p.low + p.step * np.arange(_grid_count("", p)), 12)]
