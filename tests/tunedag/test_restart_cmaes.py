"""RestartCmaEsSampler: IPOP / BIPOP restarts of CMA-ES, driven ask/tell as the flow drives it.

Two objectives: a shifted 2-D Rastrigin (multimodal; one CMA-ES run with population 4 converges to a
local minimum after some 500-600 trials with seeds 0-5), and a flat one, on which cmaes' `tolfun` criterion stops
a run as soon as its window of 10 + 30 * dim / popsize generations is full, so the restart
bookkeeping can be checked exactly and cheaply.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from tests.tunedag.conftest import PARAMS
from tunedag.config import load_config
from tunedag.restart_cmaes import GENERATION, POPSIZE, RESTARTS, RestartCmaEsSampler
from tunedag.samplers import build_sampler
from tunedag.space import suggest

Objective = Callable[[optuna.Trial], float]
# Seeds 0-2 restart at trials 580, 592 and 504: an 800-trial budget leaves each a second run of 200+ trials.
SEEDS = (0, 1, 2)
RASTRIGIN_TRIALS = 800


def rastrigin(trial: optuna.Trial) -> float:
    """Rastrigin in 2-D over [-5, 5], its global minimum 0 moved to (1.3, 1.3), off the start point."""
    zs = [trial.suggest_float(f"x{i}", -5.0, 5.0) - 1.3 for i in range(2)]
    return 10.0 * len(zs) + sum(z * z - 10.0 * math.cos(2 * math.pi * z) for z in zs)


def flat(trial: optuna.Trial) -> float:
    for i in range(2):
        trial.suggest_float(f"x{i}", -5.0, 5.0)
    return 1.0


def drive(
    sampler: optuna.samplers.BaseSampler, objective: Objective, n: int, batch: int = 1, study: optuna.Study | None = None
) -> optuna.Study:
    """Ask `batch` trials, evaluate them, tell them all; until `n` trials have been told."""
    study = study or optuna.create_study(sampler=sampler)
    told = 0
    while told < n:
        trials = [study.ask() for _ in range(min(batch, n - told))]
        for trial, value in [(t, objective(t)) for t in trials]:
            study.tell(trial, value)
        told += len(trials)
    return study


def runs(study: optuna.Study) -> list[tuple[int, int, int]]:
    """(restarts, popsize, trials) for each CMA-ES run, in order (the startup trial has no run)."""
    out: list[list[int]] = []
    for t in study.trials:
        if RESTARTS in t.system_attrs:
            key = [t.system_attrs[RESTARTS], t.system_attrs[POPSIZE]]
            if not out or out[-1][:2] != key:
                out.append([*key, 0])
            out[-1][2] += 1
    return [(r, p, n) for r, p, n in out]


@pytest.fixture(autouse=True)
def _quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


@pytest.fixture(scope="module")
def rastrigin_studies() -> dict[str | None, list[optuna.Study]]:
    """The same budget, seeds and first population, with IPOP restarts and without."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return {
        strategy: [
            drive(RestartCmaEsSampler(restart_strategy=strategy, popsize=4, seed=s), rastrigin, RASTRIGIN_TRIALS) for s in SEEDS
        ]
        for strategy in ("ipop", None)
    }


# --- restarts -----------------------------------------------------------------------------


def test_ipop_restarts_a_converged_run_with_a_larger_population(rastrigin_studies: dict[str | None, list[optuna.Study]]) -> None:
    for study in rastrigin_studies["ipop"]:
        seen = runs(study)
        assert len(seen) >= 2, seen  # at least one restart within the budget
        assert [(r, p) for r, p, _ in seen] == [(r, 4 * 2**r) for r in range(len(seen))]
        assert all(n >= 100 for _, _, n in seen[:-1])  # a run ends when it has converged, not early
    for study in rastrigin_studies[None]:
        assert runs(study) == [(0, 4, RASTRIGIN_TRIALS - 1)]


def test_ipop_finds_better_minima_than_one_run_on_the_same_budget(
    rastrigin_studies: dict[str | None, list[optuna.Study]],
) -> None:
    ipop = [s.best_value for s in rastrigin_studies["ipop"]]
    single = [s.best_value for s in rastrigin_studies[None]]
    # Same seed: both runs are identical until the first restart, after which the single run only
    # resamples its converged local minimum; so IPOP is never worse, and better on average.
    assert all(i <= s + 1e-9 for i, s in zip(ipop, single)), (ipop, single)
    assert sum(ipop) / len(ipop) < 0.8 * sum(single) / len(single), (ipop, single)


def test_ipop_on_a_flat_objective_restarts_when_the_tolfun_window_is_full() -> None:
    study = drive(RestartCmaEsSampler(restart_strategy="ipop", popsize=4, inc_popsize=3, seed=0), flat, 400)
    # (10 + ceil(30 * 2 / popsize) + 1) generations of `popsize` trials each; the startup trial is not in a run.
    assert runs(study)[:2] == [(0, 4, 26 * 4), (1, 12, 16 * 12)]


def test_bipop_alternates_small_and_large_populations() -> None:
    study = drive(RestartCmaEsSampler(restart_strategy="bipop", popsize=4, seed=1), flat, 900)
    seen = runs(study)
    assert seen[0][:2] == (0, 4) and len(seen) >= 5, seen
    budget = {"small": 0, "large": seen[0][2]}  # the first run counts as large
    regimes = []
    for _, popsize, n in seen[1:-1]:  # each restart goes to the regime that has used fewer trials
        regime = "small" if budget["small"] < budget["large"] else "large"
        n_large = regimes.count("large") + (regime == "large")
        if regime == "large":
            assert popsize == 4 * 2**n_large
        else:  # a random population between the first run's and the last large run's
            assert 4 <= popsize <= 4 * 2**n_large
        budget[regime] += n
        regimes.append(regime)
    assert {"small", "large"} <= set(regimes), (seen, regimes)


# --- the samples --------------------------------------------------------------------------


def mixed(trial: optuna.Trial) -> float:
    """Every kind of numeric parameter, and a categorical one."""
    x = [
        trial.suggest_float("f", -2.0, 3.0),
        math.log10(trial.suggest_float("flog", 1e-4, 1e-1, log=True)),
        trial.suggest_int("i", 1, 9),
        trial.suggest_int("istep", 2, 16, step=2) / 4,
        trial.suggest_float("fstep", 0.0, 0.5, step=0.1),
    ]
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    return sum(v * v for v in x) + {"a": 0.0, "b": 1.0, "c": 2.0}[kind]


def assert_inside(params: dict[str, Any]) -> None:
    assert isinstance(params["f"], float) and -2.0 <= params["f"] <= 3.0
    assert isinstance(params["flog"], float) and 1e-4 <= params["flog"] <= 1e-1
    assert type(params["i"]) is int and 1 <= params["i"] <= 9
    assert type(params["istep"]) is int and params["istep"] in range(2, 17, 2)
    assert 0.0 <= params["fstep"] <= 0.5 and params["fstep"] * 10 == pytest.approx(round(params["fstep"] * 10), abs=1e-9)
    assert params["kind"] in ("a", "b", "c")


@pytest.mark.parametrize("variant", [{}, {"use_separable_cma": True}, {"with_margin": True}, {"restart_strategy": "bipop"}])
def test_samples_stay_inside_int_step_and_log_bounds(variant: dict[str, Any]) -> None:
    sampler = RestartCmaEsSampler(**{"restart_strategy": "ipop", "popsize": 4, "sigma0": 0.5, "seed": 3, **variant})
    study = drive(sampler, mixed, 150)
    for t in study.trials:
        assert_inside(t.params)
    assert {t.params["kind"] for t in study.trials} == {"a", "b", "c"}
    space = sampler.infer_relative_search_space(study, study.trials[-1])
    assert set(space) == {"f", "flog", "i", "istep", "fstep"}  # the categorical is sampled independently
    assert not any(isinstance(d, CategoricalDistribution) for d in space.values())
    assert len({tuple(t.system_attrs[GENERATION]) for t in study.trials[1:]}) > 10  # CMA-ES did run


def test_same_seed_same_sequence_other_seed_other_sequence() -> None:
    def sequence(seed: int) -> list[dict[str, Any]]:
        study = drive(RestartCmaEsSampler(restart_strategy="bipop", popsize=4, seed=seed), flat, 300)
        assert len(runs(study)) >= 2  # the sequence goes through restarts
        return [t.params for t in study.trials]

    assert sequence(5) == sequence(5)
    assert sequence(5) != sequence(6)


def test_a_resumed_study_continues_the_same_sequence() -> None:
    """The state lives in the trials' system attrs: a new sampler (a new process) carries on."""
    whole = drive(RestartCmaEsSampler(restart_strategy="ipop", popsize=4, seed=2), flat, 300)
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(storage=storage, sampler=RestartCmaEsSampler(restart_strategy="ipop", popsize=4, seed=2))
    drive(first.sampler, flat, 150, study=first)  # the first restart comes at trial 105
    resumed = optuna.load_study(
        study_name=first.study_name, storage=storage, sampler=RestartCmaEsSampler(restart_strategy="ipop", popsize=4, seed=2)
    )
    drive(resumed.sampler, flat, 150, study=resumed)
    assert [t.params for t in resumed.trials] == [t.params for t in whole.trials]
    assert runs(resumed) == runs(whole) and len(runs(whole)) == 3  # populations 4, 8, 16


def test_several_asks_before_a_tell() -> None:
    sampler = RestartCmaEsSampler(restart_strategy="ipop", popsize=4, seed=0)
    study = drive(sampler, rastrigin, 240, batch=8)
    assert all(-5.0 <= v <= 5.0 for t in study.trials for v in t.params.values())
    # The first batch is asked before any trial is complete: random (n_startup_trials=1).
    assert all(GENERATION not in t.system_attrs for t in study.trials[:8])
    generations = [tuple(t.system_attrs[GENERATION]) for t in study.trials[8:]]
    # Each later batch of 8 is asked for one generation; the first 4 told of it update CMA-ES.
    assert generations == [(0, g) for g in range(29) for _ in range(8)]


def test_refuses_an_unknown_strategy_and_several_objectives() -> None:
    with pytest.raises(ValueError, match="restart_strategy"):
        RestartCmaEsSampler(restart_strategy="lpop")  # type: ignore[arg-type]
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=RestartCmaEsSampler(seed=0))
    with pytest.raises(ValueError, match="multi-objective"):
        study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})


# --- through the config -------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["ipop", "bipop"])
def test_built_from_params_yaml(strategy: str) -> None:
    cfg = load_config(PARAMS, {"tune.sampler": {"name": "cmaes", "restart_strategy": strategy, "popsize": 5, "inc_popsize": 2}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = build_sampler(cfg)
    assert isinstance(sampler, RestartCmaEsSampler)
    study = optuna.create_study(sampler=sampler)
    space = cfg.families[""].space
    for _ in range(40):
        trial = study.ask()
        params = suggest(trial, cfg.families)
        for key, p in space.items():  # params.yaml: int parameters and categorical ones
            if p.type == "categorical":
                assert params[key] in p.choices
            else:
                assert type(params[key]) is int and p.low <= params[key] <= p.high
        study.tell(trial, float(params["max_depth"] + params["min_samples_leaf"]) + (params["criterion"] == "gini"))
    assert {t.system_attrs[POPSIZE] for t in study.trials[1:]} == {5}
    assert len({tuple(t.system_attrs[GENERATION]) for t in study.trials[1:]}) > 5
