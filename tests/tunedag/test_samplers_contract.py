"""One contract suite over every sampler of `tune.sampler`, and the pruners of `tune.pruner`.

Each sampler is built from a config with non-default arguments, driven ask/tell through
`tunedag.space.suggest` as the flow drives it, and checked against the declared space.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from typing import Any

import optuna
import pytest
from optuna.samplers import RandomSampler

from studies.seeding import enqueue_manual
from studies.storage import grid_points_left, open_study
from tunedag.config import Config
from tunedag.config_search import PRUNER_NAMES, SAMPLER_NAMES
from tunedag.errors import ConfigError
from tunedag.samplers import AskTellGridSampler, build_pruner, build_sampler
from tunedag.space import grid, suggest

RF = "sklearn.ensemble.RandomForestClassifier"
# Every kind of parameter, and one that exists only when bootstrap is true.
SINGLE = {
    "n_estimators": {"type": "int", "low": 10, "high": 200, "log": True},
    "max_depth": {"type": "int", "low": 2, "high": 16, "step": 2},
    "min_impurity_decrease": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    "ccp_alpha": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "min_weight_fraction_leaf": {"type": "float", "low": 0.0, "high": 0.4},
    "criterion": {"type": "categorical", "choices": ["gini", "entropy", "log_loss"]},
    "bootstrap": {"type": "categorical", "choices": [True, False]},
    "max_samples": {"type": "float", "low": 0.2, "high": 1.0, "when": {"bootstrap": [True]}},
}
FAMILIES = {
    "lr": {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "search_space": {
            "C": {"type": "float", "low": 1e-3, "high": 100.0, "log": True},
            "solver": {"type": "categorical", "choices": ["lbfgs", "liblinear"]},
            "intercept_scaling": {"type": "float", "low": 0.1, "high": 10.0, "when": {"solver": ["liblinear"]}},
        },
    },
    "rf": {
        "estimator": RF,
        "fixed": {"n_jobs": 1},
        "search_space": {
            "n_estimators": {"type": "int", "low": 10, "high": 100, "step": 10},
            "bootstrap": {"type": "categorical", "choices": [True, False]},
            "max_samples": {"type": "float", "low": 0.2, "high": 1.0, "when": {"bootstrap": [True]}},
        },
    },
}
GRID = {k: SINGLE[k] for k in ("max_depth", "min_impurity_decrease", "criterion")}  # 8 * 6 * 3 points
GRID6 = {"max_depth": {"type": "int", "low": 2, "high": 4}, "criterion": {"type": "categorical", "choices": ["gini", "entropy"]}}
ENQUEUE = {
    "single": [
        {
            "n_estimators": 50,
            "max_depth": 4,
            "min_impurity_decrease": 0.1,
            "ccp_alpha": 0.01,
            "min_weight_fraction_leaf": 0.0,
            "criterion": c,
            "bootstrap": b,
            **({"max_samples": 0.5} if b else {}),
        }
        for c, b in itertools.product(["gini", "entropy"], [True, False])
    ],
    "families": [
        {"family": "lr", "lr.C": 1.0, "lr.solver": "lbfgs"},
        {"family": "lr", "lr.C": 0.1, "lr.solver": "liblinear", "lr.intercept_scaling": 2.0},
        {"family": "rf", "rf.n_estimators": 30, "rf.bootstrap": True, "rf.max_samples": 0.5},
        {"family": "rf", "rf.n_estimators": 60, "rf.bootstrap": False},
    ],
}
# Non-default arguments, so that a builder that drops one no longer matches Optuna built directly.
ARGS: dict[str, dict[str, Any]] = {
    "tpe": {
        "n_startup_trials": 4,
        "n_ei_candidates": 12,
        "multivariate": True,
        "group": True,
        "constant_liar": True,
        "consider_endpoints": True,
        "prior_weight": 0.8,
    },
    "gp": {"n_startup_trials": 3, "deterministic_objective": True},
    "cmaes": {
        "n_startup_trials": 2,
        "sigma0": 0.2,
        "restart_strategy": None,
        "popsize": 4,
        "inc_popsize": 2,
        "use_separable_cma": False,
        "with_margin": True,
    },
    "qmc": {"qmc_type": "halton", "scramble": True},
    "nsga2": {"population_size": 4, "mutation_prob": 0.3, "crossover_prob": 0.8, "swapping_prob": 0.4},
}
N_TRIALS = {"gp": 6, "cmaes": 8}  # slower samplers; the others run 12
MULTI_OBJECTIVE = ("nsga2", "tpe", "random", "qmc")


def make_cfg(sampler: str, space: str = "single", seed: int = 7, cv_folds: int = 0, **tune: Any) -> Config:
    """A config for `sampler` over the `single`, `families`, `grid` or `grid6` space."""
    raw: dict[str, Any] = {"seed": seed, "data": {"source": "sklearn", "name": "iris", "cv_folds": cv_folds}}
    if space == "families":
        raw["model"] = {"families": copy.deepcopy(FAMILIES)}
    else:
        raw["model"] = {"estimator": RF, "fixed": {"n_jobs": 1}}
        raw["search_space"] = copy.deepcopy({"single": SINGLE, "grid": GRID, "grid6": GRID6}[space])
    raw["tune"] = {"metric": "accuracy", "sampler": {"name": sampler, **ARGS.get(sampler, {})}, **tune}
    if sampler == "manual":
        raw["tune"]["enqueue"] = ENQUEUE[space]
    return Config.model_validate(raw)


def score(params: dict[str, Any]) -> float:
    """A deterministic objective of the parameters."""
    return sum(float(v) if isinstance(v, (int, float)) else len(str(v)) for v in params.values())


def new_study(cfg: Config, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    study = optuna.create_study(directions=cfg.tune.directions, sampler=sampler or build_sampler(cfg))
    for params in cfg.tune.enqueue:  # as the flow does for tune.enqueue
        study.enqueue_trial(params)
    return study


def run(cfg: Config, n: int, batch: int = 1, sampler: optuna.samplers.BaseSampler | None = None) -> list[dict[str, Any]]:
    """Ask `batch` trials, suggest on each, then tell them all; return the configurations."""
    study = new_study(cfg, sampler)
    asked: list[dict[str, Any]] = []
    while len(asked) < n:
        trials = [study.ask() for _ in range(min(batch, n - len(asked)))]
        configs = [suggest(t, cfg.families) for t in trials]
        for trial, params in zip(trials, configs):
            values = [score(params), -len(params)][: len(cfg.tune.directions)]
            study.tell(trial, values)
        asked += configs
    return asked


def n_trials(cfg: Config) -> int:
    return len(cfg.tune.enqueue) if cfg.tune.sampler.name == "manual" else N_TRIALS.get(cfg.tune.sampler.name, 12)


def assert_inside(params: dict[str, Any], cfg: Config) -> None:
    """Every parameter inside its declaration; a `when` parameter present exactly when its parents match."""
    families = cfg.families
    name = params["family"] if len(families) > 1 else next(iter(families))
    prefix = f"{name}." if name else ""
    expected = {"family"} if len(families) > 1 else set()
    for key, p in families[name].space.items():
        if all(params.get(prefix + parent) in values for parent, values in p.when.items()):
            expected.add(prefix + key)
            assert_value(params[prefix + key], p.model_dump(), key)
    assert set(params) == expected, (params, expected)


def assert_value(v: Any, p: dict[str, Any], key: str) -> None:
    if p["type"] == "categorical":
        assert any(v == c and type(v) is type(c) for c in p["choices"]), (key, v)
        return
    assert isinstance(v, float) if p["type"] == "float" else (isinstance(v, int) and not isinstance(v, bool)), (key, v)
    assert p["low"] <= v <= p["high"], (key, v)
    if p.get("step"):
        steps = (v - p["low"]) / p["step"]
        assert steps == pytest.approx(round(steps), abs=1e-9), (key, v)


def direct(cfg: Config) -> optuna.samplers.BaseSampler:
    """The same sampler built straight from Optuna's classes, with the arguments written out here."""
    seed, s = cfg.seed, cfg.tune.sampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental / deprecated-argument notices
        return {
            "grid": lambda: optuna.samplers.GridSampler(grid(cfg.search_space), seed=seed),
            "random": lambda: RandomSampler(seed=seed),
            "tpe": lambda: optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=4,
                n_ei_candidates=12,
                multivariate=True,
                group=True,
                constant_liar=True,
                consider_endpoints=True,
                prior_weight=0.8,
                warn_independent_sampling=False,
            ),
            "gp": lambda: optuna.samplers.GPSampler(
                seed=seed,
                n_startup_trials=3,
                deterministic_objective=True,
                independent_sampler=RandomSampler(seed=seed),
                warn_independent_sampling=False,
            ),
            "cmaes": lambda: optuna.samplers.CmaEsSampler(
                seed=seed,
                n_startup_trials=2,
                sigma0=0.2,
                restart_strategy=None,
                popsize=4,
                inc_popsize=2,
                use_separable_cma=False,
                with_margin=True,
                independent_sampler=RandomSampler(seed=seed),
                warn_independent_sampling=False,
            ),
            "qmc": lambda: optuna.samplers.QMCSampler(
                qmc_type="halton",
                scramble=True,
                seed=seed,
                independent_sampler=RandomSampler(seed=seed),
                warn_asynchronous_seeding=False,
                warn_independent_sampling=False,
            ),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(
                population_size=4, mutation_prob=0.3, crossover_prob=0.8, swapping_prob=0.4, seed=seed
            ),
        }[s.name]()


@pytest.fixture(autouse=True)
def _quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


@pytest.fixture(params=SAMPLER_NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def seq_space(name: str) -> str:
    return "grid" if name == "grid" else "single"


# --- the contract every sampler meets -----------------------------------------------------


def test_builds_without_warnings(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = build_sampler(make_cfg(name, seq_space(name)))
    assert isinstance(sampler, optuna.samplers.BaseSampler)


def test_samples_stay_inside_a_conditional_space(name: str) -> None:
    cfg = make_cfg(name, seq_space(name))
    asked = run(cfg, n_trials(cfg))
    for params in asked:
        assert_inside(params, cfg)
    if name == "manual":
        assert asked == cfg.tune.enqueue
    if name != "grid":  # both branches of the condition were exercised
        assert {"max_samples" in p for p in asked} == {True, False}


def test_samples_stay_inside_a_two_family_space(name: str) -> None:
    if name == "grid":  # config refuses a grid over several families
        with pytest.raises(ValueError, match="grid needs one model"):
            make_cfg(name, "families")
        return
    cfg = make_cfg(name, "families")
    asked = run(cfg, n_trials(cfg))
    for params in asked:
        assert_inside(params, cfg)
    assert {p["family"] for p in asked} == {"lr", "rf"}
    assert {"lr.intercept_scaling" in p or "rf.max_samples" in p for p in asked} == {True, False}


def test_same_seed_same_sequence_other_seed_other_sequence(name: str) -> None:
    cfg = make_cfg(name, seq_space(name), seed=3)
    first = run(cfg, n_trials(cfg))
    assert run(make_cfg(name, seq_space(name), seed=3), n_trials(cfg)) == first
    if name != "manual":  # manual replays tune.enqueue whatever the seed
        assert run(make_cfg(name, seq_space(name), seed=4), n_trials(cfg)) != first


def test_same_sequence_as_optuna_built_directly(name: str) -> None:
    cfg = make_cfg(name, seq_space(name))
    if name == "manual":  # no Optuna sampler to compare with: tunedag's queue (studies.seeding) must replay tune.enqueue in order
        study = optuna.create_study(directions=cfg.tune.directions, sampler=build_sampler(cfg))
        assert enqueue_manual(study, cfg) == len(cfg.tune.enqueue)
        asked = [suggest(study.ask(), cfg.families) for _ in cfg.tune.enqueue]
        assert asked == cfg.tune.enqueue
        return
    assert run(cfg, n_trials(cfg)) == run(cfg, n_trials(cfg), sampler=direct(cfg))


def test_parallel_asks_before_any_tell(name: str) -> None:
    cfg = make_cfg(name, seq_space(name))
    asked = run(cfg, 4, batch=4)
    assert len(asked) == 4
    for params in asked:
        assert_inside(params, cfg)
    if name in ("grid", "manual"):  # a grid point or a listed configuration is handed out once
        assert len({tuple(sorted(p.items())) for p in asked}) == 4


@pytest.mark.parametrize("sampler", MULTI_OBJECTIVE)
def test_multi_objective(sampler: str) -> None:
    cfg = make_cfg(sampler, objectives=["model_size_kb"])
    study = new_study(cfg)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    for _ in range(10):
        trial = study.ask()
        params = suggest(trial, cfg.families)
        assert_inside(params, cfg)
        study.tell(trial, [score(params), float(len(params))])
    assert len(study.trials) == 10 and study.best_trials


@pytest.mark.parametrize("sampler", ["grid", "cmaes", "gp"])
def test_single_objective_samplers_are_refused_for_several_objectives(sampler: str) -> None:
    with pytest.raises(ValueError, match=f"sampler {sampler} handles a single objective"):
        make_cfg(sampler, seq_space(sampler), objectives=["model_size_kb"])


# --- the grid -----------------------------------------------------------------------------


def test_grid_stops_at_exhaustion() -> None:
    cfg = make_cfg("grid", "grid6")
    space = cfg.families[""].space
    sampler = build_sampler(cfg)
    assert isinstance(sampler, AskTellGridSampler)
    study = optuna.create_study(directions=cfg.tune.directions, sampler=sampler)
    assert grid_points_left(study, space) == 6
    seen = []
    for _ in range(6):
        assert not sampler.is_exhausted(study)
        trial = study.ask()
        params = suggest(trial, cfg.families)
        study.tell(trial, score(params))  # after_trial must not call study.stop() outside optimize()
        seen.append((params["max_depth"], params["criterion"]))
    assert grid_points_left(study, space) == 0
    assert sampler.is_exhausted(study)
    assert len(set(seen)) == 6
    assert set(seen) == set(itertools.product([2, 3, 4], ["gini", "entropy"]))


def test_grid_of_one_named_family_uses_the_prefixed_names() -> None:
    raw = {
        "seed": 0,
        "data": {"source": "sklearn", "name": "iris"},
        "tune": {"sampler": "grid"},
        "model": {"families": {"rf": {"estimator": RF, "search_space": GRID6}}},
    }
    cfg = Config.model_validate(raw)
    study = optuna.create_study(sampler=build_sampler(cfg))
    params = suggest(study.ask(), cfg.families)
    assert set(params) == {"rf.max_depth", "rf.criterion"}


# --- refused combinations -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampler", "changes", "key"),
    [
        ("cmaes", {"use_separable_cma": True, "with_margin": True}, "with_margin"),
        ("tpe", {"multivariate": False, "group": True}, "group"),
    ],
)
def test_impossible_sampler_arguments_are_refused(sampler: str, changes: dict[str, Any], key: str) -> None:
    cfg = make_cfg(sampler)
    cfg = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"sampler": cfg.tune.sampler.model_copy(update=changes)})})
    with pytest.raises(ConfigError, match=rf"tune\.sampler\.{key}\b"):
        build_sampler(cfg)


# --- pruners ------------------------------------------------------------------------------

PRUNER_ARGS = {
    "none": ({}, optuna.pruners.NopPruner, {}),
    "median": (
        {"n_startup_trials": 3, "n_warmup_steps": 1, "interval_steps": 2},
        optuna.pruners.MedianPruner,
        {"_percentile": 50.0, "_n_startup_trials": 3, "_n_warmup_steps": 1, "_interval_steps": 2, "_n_min_trials": 1},
    ),
    "percentile": (
        {"percentile": 40.0, "n_startup_trials": 2, "n_warmup_steps": 2, "interval_steps": 3},
        optuna.pruners.PercentilePruner,
        {"_percentile": 40.0, "_n_startup_trials": 2, "_n_warmup_steps": 2, "_interval_steps": 3, "_n_min_trials": 1},
    ),
    "successive_halving": (
        {"min_resource": 2, "reduction_factor": 2, "min_early_stopping_rate": 1},
        optuna.pruners.SuccessiveHalvingPruner,
        {"_min_resource": 2, "_reduction_factor": 2, "_min_early_stopping_rate": 1, "_bootstrap_count": 0},
    ),
    "hyperband": (
        {"min_resource": 1, "reduction_factor": 2},
        optuna.pruners.HyperbandPruner,
        {"_min_resource": 1, "_max_resource": 4, "_reduction_factor": 2, "_bootstrap_count": 0},
    ),
}
FRACTIONS4 = {"kind": "train_fraction", "fractions": [0.25, 0.5, 0.75, 1.0]}


@pytest.mark.parametrize("pruner", PRUNER_NAMES)
def test_build_pruner_passes_every_argument(pruner: str) -> None:
    args, cls, attrs = PRUNER_ARGS[pruner]
    fidelity = FRACTIONS4 if pruner != "none" else {"kind": "none"}
    pruned = build_pruner(make_cfg("random", pruner={"name": pruner, **args}, fidelity=fidelity))
    assert type(pruned) is cls
    assert {k: getattr(pruned, k) for k in attrs} == attrs


@pytest.mark.parametrize(
    ("fidelity", "cv_folds", "max_resource", "expected"),
    [
        ({"kind": "folds"}, 5, None, 5),
        (FRACTIONS4, 0, None, 4),
        ({"kind": "ensemble_size", "steps": 6}, 0, None, 6),
        ({"kind": "ensemble_size", "steps": 6}, 0, 9, 9),
    ],
    ids=["folds", "train_fraction", "ensemble_size", "explicit"],
)
def test_hyperband_max_resource_is_the_number_of_fidelity_steps(
    fidelity: dict, cv_folds: int, max_resource: int | None, expected: int
) -> None:
    cfg = make_cfg("random", cv_folds=cv_folds, pruner={"name": "hyperband", "max_resource": max_resource}, fidelity=fidelity)
    assert build_pruner(cfg)._max_resource == expected


def test_hyperband_refuses_min_resource_above_max_resource() -> None:
    cfg = make_cfg("random", pruner={"name": "hyperband", "min_resource": 5}, fidelity=FRACTIONS4)
    with pytest.raises(ConfigError, match=r"tune\.pruner\.min_resource"):
        build_pruner(cfg)


def test_median_pruner_stops_a_trial_far_below_the_median() -> None:
    cfg = make_cfg(
        "random",
        pruner={"name": "median", "n_startup_trials": 5},
        fidelity={"kind": "train_fraction", "fractions": [0.5, 0.75, 1.0]},
    )
    study = optuna.create_study(directions=cfg.tune.directions, sampler=build_sampler(cfg), pruner=build_pruner(cfg))
    for _ in range(5):
        trial = study.ask()
        for step in (1, 2, 3):
            trial.report(0.9, step)
        study.tell(trial, 0.9)
    good, bad = study.ask(), study.ask()
    good.report(0.95, 1)
    bad.report(0.1, 1)
    assert not good.should_prune()
    assert bad.should_prune()


def test_open_study_uses_the_configured_directions_sampler_and_pruner(tmp_path) -> None:
    cfg = make_cfg("nsga2", objectives=["model_size_kb"], storage=str(tmp_path / "study.journal"))
    study = open_study(cfg, "v1")
    assert [d.name.lower() for d in study.directions] == cfg.tune.directions == ["maximize", "minimize"]
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler)
    assert isinstance(study.pruner, optuna.pruners.NopPruner)
