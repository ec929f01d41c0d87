"""Search spaces as Optuna distributions and grids, sampled on a bare space."""

from __future__ import annotations

import itertools
import tracemalloc
import warnings
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import TypeAdapter

from compat.optuna import distribution_contains
from studies.storage import grid_points_left
from tunedag.config import Family, Param
from tunedag.errors import ConfigError, SearchSpaceError
from tunedag.samplers import AskTellGridSampler
from tunedag.space import MAX_GRID_POINTS, distributions, grid, grid_size, space_size

SAMPLERS = ["grid", "random", "tpe"]
_SPACE = TypeAdapter(dict[str, Param])


def space_of(raw: dict[str, dict[str, Any]]) -> dict[str, Param]:
    """A search space parsed exactly as `search_space:` in params.yaml is."""
    return _SPACE.validate_python(raw)


# Every kind of parameter, each with a step so that the grid sampler can enumerate it: 9 * 5 * 3 points.
STEPPED = {
    "x": {"type": "float", "low": -1.0, "high": 1.0, "step": 0.25},
    "n": {"type": "int", "low": 1, "high": 9, "step": 2},
    "c": {"type": "categorical", "choices": ["a", "b", None]},
}
# Continuous and log-scale parameters: no grid, for random and TPE only.
CONTINUOUS = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "x": {"type": "float", "low": -2.0, "high": 3.0},
    "depth": {"type": "int", "low": 2, "high": 64, "log": True},
    "c": {"type": "categorical", "choices": ["sqrt", 0.5, True]},
}
PENALTY = {"a": 0.0, "b": 0.5, None: 1.0, "sqrt": 0.2, 0.5: 0.0, True: 0.7}


def objective(params: dict[str, Any]) -> float:
    """Deterministic in the parameters, so a seeded study is reproducible end to end."""
    value = 0.0
    for name, v in params.items():
        value += PENALTY[v] if name == "c" else (float(v) - 0.3) ** 2
    return value


def sampler_for(name: str, space: dict[str, Param], seed: int) -> optuna.samplers.BaseSampler:
    """The sampler on a bare space (build_sampler's contract with a whole config is in test_samplers_contract)."""
    if name == "grid":
        return AskTellGridSampler(grid(space), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)


def run_ask_tell(name: str, space: dict[str, Param], seed: int, n: int, batch: int = 1) -> list[dict[str, Any]]:
    """Ask `batch` trials before telling any, as the flow does with parallel trials; return the params asked."""
    study = optuna.create_study(sampler=sampler_for(name, space, seed), direction="minimize")
    dists = distributions(space)
    asked = []
    while len(asked) < n:
        trials = [study.ask(dists) for _ in range(min(batch, n - len(asked)))]
        for trial in trials:
            asked.append(dict(trial.params))
            study.tell(trial, objective(trial.params))
    return asked


def assert_inside(params: dict[str, Any], raw_space: dict[str, dict[str, Any]]) -> None:
    assert set(params) == set(raw_space)
    for name, value in params.items():
        p = raw_space[name]
        if p["type"] == "categorical":
            assert any(value is c or (value == c and type(value) is type(c)) for c in p["choices"]), (name, value)
            continue
        assert isinstance(value, int if p["type"] == "int" else float), (name, value)
        assert p["low"] <= value <= p["high"], (name, value)
        if p.get("step"):
            steps = (value - p["low"]) / p["step"]
            assert steps == pytest.approx(round(steps), abs=1e-9), (name, value)


@pytest.fixture(params=SAMPLERS)
def sampler_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


# --- the contract every sampler meets -----------------------------------------------------


def test_params_stay_inside_the_declared_space(sampler_name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Optuna's "value is out of range of the parameter"
        asked = run_ask_tell(sampler_name, space_of(STEPPED), seed=0, n=20)
    assert len(asked) == 20
    for params in asked:
        assert_inside(params, STEPPED)


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_continuous_and_log_params_stay_inside_the_declared_space(name: str) -> None:
    for params in run_ask_tell(name, space_of(CONTINUOUS), seed=0, n=15):
        assert_inside(params, CONTINUOUS)


def test_same_seed_same_sequence(sampler_name: str) -> None:
    space = space_of(STEPPED)
    first = run_ask_tell(sampler_name, space, seed=7, n=12)
    again = run_ask_tell(sampler_name, space, seed=7, n=12)
    assert first == again


def test_other_seed_other_sequence(sampler_name: str) -> None:
    space = space_of(STEPPED)
    assert run_ask_tell(sampler_name, space, seed=7, n=12) != run_ask_tell(sampler_name, space, seed=8, n=12)


@pytest.mark.parametrize("batch", [2, 4])
def test_several_asks_before_any_tell(sampler_name: str, batch: int) -> None:
    space = space_of(STEPPED)
    asked = run_ask_tell(sampler_name, space, seed=1, n=12, batch=batch)
    assert len(asked) == 12
    for params in asked:
        assert_inside(params, STEPPED)
    assert asked == run_ask_tell(sampler_name, space, seed=1, n=12, batch=batch)
    if sampler_name == "grid":  # a grid point is never handed to two running trials
        assert len({tuple(sorted(p.items(), key=str)) for p in asked}) == 12


def test_distributions_follow_the_config_in_order() -> None:
    dists = distributions(space_of({**CONTINUOUS, "n": {"type": "int", "low": 0, "high": 10, "step": 5}}))

    assert list(dists) == ["lr", "x", "depth", "c", "n"]
    assert dists["lr"] == FloatDistribution(1e-4, 1.0, log=True)
    assert dists["x"] == FloatDistribution(-2.0, 3.0)
    assert dists["depth"] == IntDistribution(2, 64, log=True)
    assert dists["c"] == CategoricalDistribution(["sqrt", 0.5, True])
    assert dists["n"] == IntDistribution(0, 10, step=5)


# --- the grid -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "values"),
    [
        ({"type": "int", "low": 1, "high": 9, "step": 2}, [1, 3, 5, 7, 9]),
        ({"type": "int", "low": 0, "high": 10, "step": 3}, [0, 3, 6, 9]),
        ({"type": "int", "low": -2, "high": 2}, [-2, -1, 0, 1, 2]),
        ({"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}, [0.0, 0.25, 0.5, 0.75, 1.0]),
        ({"type": "float", "low": 0.0, "high": 1.0, "step": 0.1}, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        ({"type": "float", "low": 0.1, "high": 0.5, "step": 0.15}, [0.1, 0.25, 0.4]),
        ({"type": "categorical", "choices": ["gini", None, 0.5, False]}, ["gini", None, 0.5, False]),
    ],
    ids=[
        "int-step",
        "int-step-not-reaching-high",
        "int-default-step",
        "float-step",
        "float-step-tenth",
        "float-step-not-reaching-high",
        "categorical",
    ],
)
def test_grid_enumerates_every_point(param: dict[str, Any], values: list[Any]) -> None:
    got = grid(space_of({"p": param}))["p"]
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]
    with warnings.catch_warnings():  # Optuna notes that a step not dividing the range moves `high` down
        warnings.filterwarnings("ignore", message=".*not divisible by `step`")
        dist = distributions(space_of({"p": param}))["p"]
    assert all(distribution_contains(dist, v) for v in got)


def test_grid_size_is_the_product() -> None:
    assert grid_size(space_of(STEPPED)) == 9 * 5 * 3


def test_space_size_counts_finite_spaces_over_families_and_none_otherwise() -> None:
    stepped, pair = (
        Family("e", {}, space_of(STEPPED)),
        Family("f", {}, space_of({"k": {"type": "categorical", "choices": [1, 2]}})),
    )
    assert space_size({"": stepped}) == 9 * 5 * 3 and space_size({"a": stepped, "b": pair}) == 9 * 5 * 3 + 2
    assert space_size({"": Family("e", {}, {})}) == 1  # nothing to search: one configuration
    assert space_size({"": Family("e", {}, space_of(CONTINUOUS))}) is None  # a float without a step
    conditional = {**STEPPED, "m": {"type": "int", "low": 1, "high": 3, "when": {"c": ["a"]}}}
    assert space_size({"": Family("e", {}, space_of(conditional))}) is None


def test_grid_sampler_asks_every_point_once_then_is_exhausted() -> None:
    raw = {
        "x": {"type": "float", "low": -1.0, "high": 1.0, "step": 0.5},
        "n": {"type": "int", "low": 1, "high": 5, "step": 2},
        "c": {"type": "categorical", "choices": ["a", "b", None]},
    }
    space = space_of(raw)
    sampler = sampler_for("grid", space, seed=0)
    assert isinstance(sampler, AskTellGridSampler)
    study = optuna.create_study(sampler=sampler)
    total = grid_size(space)
    assert total == 45 and grid_points_left(study, space) == total

    seen = []
    for i in range(total):
        assert not sampler.is_exhausted(study)
        trial = study.ask(distributions(space))
        assert grid_points_left(study, space) == total - i - 1
        seen.append((trial.params["x"], trial.params["n"], trial.params["c"]))
        study.tell(trial, objective(trial.params))

    values = grid(space)
    assert sorted(seen, key=str) == sorted(itertools.product(values["x"], values["n"], values["c"]), key=str)
    assert grid_points_left(study, space) == 0
    assert sampler.is_exhausted(study)


def test_grid_points_asked_but_not_told_count_as_started() -> None:
    space = space_of({"n": {"type": "int", "low": 1, "high": 4}})
    sampler = sampler_for("grid", space, seed=0)
    study = optuna.create_study(sampler=sampler)
    trials = [study.ask(distributions(space)) for _ in range(4)]

    assert grid_points_left(study, space) == 0
    assert sorted(t.params["n"] for t in trials) == [1, 2, 3, 4]
    assert not sampler.is_exhausted(study)  # started, not finished
    for t in trials:
        study.tell(t, float(t.params["n"]))
    assert sampler.is_exhausted(study)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ({"lr": {"type": "float", "low": 0.01, "high": 1.0}}, "lr"),
        ({"lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True}}, "lr"),
        ({"ok": {"type": "int", "low": 1, "high": 3}, "trees": {"type": "int", "low": 10, "high": 300, "log": True}}, "trees"),
    ],
    ids=["float-without-step", "log-float", "log-int"],
)
def test_grid_refuses_a_space_without_finite_points(raw: dict[str, Any], name: str) -> None:
    space = space_of(raw)
    for build in (lambda: grid(space), lambda: sampler_for("grid", space, seed=0)):
        with pytest.raises(SearchSpaceError, match=rf"search_space\.{name}\b"):
            build()


def test_search_space_error_is_a_config_error() -> None:
    assert issubclass(SearchSpaceError, ConfigError)


def test_grid_refuses_too_many_points() -> None:
    space = space_of({name: {"type": "int", "low": 1, "high": 100} for name in ("a", "b", "c")})
    with pytest.raises(SearchSpaceError, match=r"search_space has 1000000 grid points") as info:
        grid(space)
    assert str(MAX_GRID_POINTS) in str(info.value)


def test_grid_at_the_limit_is_accepted() -> None:
    space = space_of({"a": {"type": "int", "low": 1, "high": 1000}, "b": {"type": "int", "low": 1, "high": 100}})
    assert grid_size(space) == MAX_GRID_POINTS


@pytest.mark.parametrize(
    "param",
    [
        {"type": "int", "low": 0, "high": 500_000},
        {"type": "float", "low": 0.0, "high": 1.0, "step": 2e-6},
    ],
    ids=["int", "float"],
)
def test_too_large_grid_is_refused_before_it_is_built(param: dict[str, Any]) -> None:
    """A huge range must be refused by counting, not by listing every point first.

    With `high: 1_000_000_000` the listing would take gigabytes before the refusal; here the
    range is small enough to be safe and the memory the refusal takes is measured instead.
    """
    space = space_of({"p": param})
    tracemalloc.start()
    try:
        with pytest.raises(SearchSpaceError, match="grid points"):
            grid(space)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"refusing a 500,000-point grid allocated {peak / 1e6:.0f} MB"
