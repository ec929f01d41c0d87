"""The configured Optuna sampler and pruner, with every argument taken from `params.yaml`.

Optuna's defaults move between releases (5.0 made TPE multivariate with a constant liar), so
nothing here relies on one: each argument comes from `tune.sampler` / `tune.pruner`.

Optuna 5.0 warns about several arguments it still honours (`prior_weight`, `consider_endpoints`,
`warn_independent_sampling` and `sigma0` are deprecated; `group`, `deterministic_objective`,
`use_separable_cma` and `with_margin` are experimental). Passing them is deliberate, so those
warnings are silenced while a sampler is built; an Optuna release that drops one fails loudly
with a TypeError instead. CMA-ES restarts are gone from Optuna (since 4.4 `restart_strategy`
is accepted and ignored), so `restart_strategy: ipop | bipop` runs tunedag's RestartCmaEsSampler
(`tunedag.restart_cmaes`, on the `cmaes` package) and null runs Optuna's CmaEsSampler.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from tunedag.config import Config
from tunedag.errors import ConfigError
from tunedag.space import grid

_DEPRECATED_BUT_HONOURED = (
    r"`(prior_weight|consider_endpoints|warn_independent_sampling|sigma0|restart_strategy)` has been deprecated"
)


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler for an ask/tell driver: exhaustion is checked before asking.

    GridSampler.after_trial calls `study.stop()`, which raises outside `optimize()`;
    the driver asks `is_exhausted` (or `grid_points_left`) itself instead.
    """

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: list[float] | None) -> None:  # noqa: D102
        return None


def build_sampler(cfg: Config, seed: int | None = None) -> BaseSampler:
    """The sampler named by `tune.sampler`, seeded with `seed` (default: the config's `seed`).

    Args:
        cfg: the validated config; `tune.sampler` holds the name and every argument.
        seed: the driver's seed (`continuation_seed`); grid, QMC's sequence and the restart CMA-ES
            keep `cfg.seed`, since they continue a study from what it holds already.

    Returns:
        A fresh sampler. Raises ConfigError (naming `tune.sampler.<field>`) for a combination
        Optuna cannot run, and SearchSpaceError for a grid over a space with no finite grid.
    """
    with _quiet_construction():
        return _SAMPLERS[cfg.tune.sampler.name](cfg, cfg.seed if seed is None else seed)


def continuation_seed(seed: int, n_trials: int, driver: str | None = None) -> int:
    """The seed of a driver that starts on a study holding `n_trials` trials; `driver` names a process joining others.

    `seed` itself for the first driver of an empty study, so that one uninterrupted run is exactly
    raw Optuna with `seed`. Otherwise a seed derived from (seed, n_trials, driver): a study extended,
    resumed after a kill or driven by several processes continues its sequence instead of replaying
    the draws its first driver made (which a seeded sampler would repeat trial for trial).
    """
    if n_trials == 0 and driver is None:
        return seed
    entropy = [seed, n_trials, *(driver or "").encode()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def build_pruner(cfg: Config) -> optuna.pruners.BasePruner:
    """The pruner named by `tune.pruner`; intermediate values are reported at steps 1..n.

    Args:
        cfg: the validated config; `tune.pruner` holds the name and every argument.

    Returns:
        A fresh pruner (NopPruner for `none`).
    """
    return _PRUNERS[cfg.tune.pruner.name](cfg)


def fidelity_steps(cfg: Config) -> int:
    """How many intermediate values a trial reports (0 when `tune.fidelity.kind` is none)."""
    if cfg.tune.fidelity.kind == "folds":
        return cfg.data.cv_folds
    return cfg.tune.fidelity.n_steps


@contextmanager
def _quiet_construction() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, message=_DEPRECATED_BUT_HONOURED)
        yield


def _grid(cfg: Config, seed: int) -> BaseSampler:
    # The names must be those `space.suggest` asks for: `<family>.<param>` for a named family.
    ((name, family),) = cfg.families.items()
    prefix = f"{name}." if name else ""
    return AskTellGridSampler({prefix + k: v for k, v in grid(family.space).items()}, seed=cfg.seed)  # it skips visited points


def _random(cfg: Config, seed: int) -> BaseSampler:
    return RandomSampler(seed=seed)


def _tpe(cfg: Config, seed: int) -> BaseSampler:
    s = cfg.tune.sampler
    if s.group and not s.multivariate:
        raise ConfigError(
            "tune.sampler.group: true needs tune.sampler.multivariate: true (Optuna's TPE groups only multivariate models)"
        )
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=s.n_startup_trials,
        n_ei_candidates=s.n_ei_candidates,
        multivariate=s.multivariate,
        group=s.group,
        constant_liar=s.constant_liar,
        consider_endpoints=s.consider_endpoints,
        prior_weight=s.prior_weight,
        warn_independent_sampling=False,
    )


def _gp(cfg: Config, seed: int) -> BaseSampler:
    s = cfg.tune.sampler
    return optuna.samplers.GPSampler(
        seed=seed,
        n_startup_trials=s.n_startup_trials,
        deterministic_objective=s.deterministic_objective,
        independent_sampler=RandomSampler(seed=seed),
        warn_independent_sampling=False,
    )


def _cmaes(cfg: Config, seed: int) -> BaseSampler:
    s = cfg.tune.sampler
    if s.use_separable_cma and s.with_margin:
        raise ConfigError(
            "tune.sampler.with_margin: true cannot be combined with use_separable_cma: true (Optuna has no separable CMA-ES with margin)"
        )
    if s.restart_strategy is not None:  # Optuna >= 4.4 would ignore it: restart with the `cmaes` package instead
        from tunedag.restart_cmaes import RestartCmaEsSampler

        return RestartCmaEsSampler(
            restart_strategy=s.restart_strategy,
            popsize=s.popsize,
            inc_popsize=s.inc_popsize,
            sigma0=s.sigma0,
            n_startup_trials=s.n_startup_trials,
            use_separable_cma=s.use_separable_cma,
            with_margin=s.with_margin,
            seed=cfg.seed,  # its draws derive from the seed and the trial number: a continued study goes on, not over
            independent_sampler=RandomSampler(seed=seed),
        )
    return optuna.samplers.CmaEsSampler(  # without restarts; `inc_popsize` only matters to restarts
        seed=seed,
        n_startup_trials=s.n_startup_trials,
        sigma0=s.sigma0,
        popsize=s.popsize,
        use_separable_cma=s.use_separable_cma,
        with_margin=s.with_margin,
        independent_sampler=RandomSampler(seed=seed),
        warn_independent_sampling=False,
    )


def _qmc(cfg: Config, seed: int) -> BaseSampler:
    s = cfg.tune.sampler
    return optuna.samplers.QMCSampler(
        qmc_type=s.qmc_type,
        scramble=s.scramble,
        seed=cfg.seed,  # the study counts QMC's sample ids under this seed: a continued study takes the next points
        independent_sampler=RandomSampler(seed=seed),
        warn_asynchronous_seeding=False,
        warn_independent_sampling=False,
    )


def _nsga2(cfg: Config, seed: int) -> BaseSampler:
    s = cfg.tune.sampler
    return optuna.samplers.NSGAIISampler(
        population_size=s.population_size,
        mutation_prob=s.mutation_prob,
        crossover_prob=s.crossover_prob,
        swapping_prob=s.swapping_prob,
        seed=seed,
    )


def _manual(cfg: Config, seed: int) -> BaseSampler:
    # Every trial comes from tune.enqueue with all its parameters fixed; the sampler is not consulted.
    return RandomSampler(seed=seed)


_SAMPLERS: dict[str, Callable[[Config, int], BaseSampler]] = {
    "grid": _grid,
    "random": _random,
    "tpe": _tpe,
    "gp": _gp,
    "cmaes": _cmaes,
    "qmc": _qmc,
    "nsga2": _nsga2,
    "manual": _manual,
}


def _none(cfg: Config) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def _median(cfg: Config) -> optuna.pruners.BasePruner:
    p = cfg.tune.pruner
    return optuna.pruners.MedianPruner(
        n_startup_trials=p.n_startup_trials,
        n_warmup_steps=p.n_warmup_steps,
        interval_steps=p.interval_steps,
        n_min_trials=1,
    )


def _percentile(cfg: Config) -> optuna.pruners.BasePruner:
    p = cfg.tune.pruner
    return optuna.pruners.PercentilePruner(
        percentile=p.percentile,
        n_startup_trials=p.n_startup_trials,
        n_warmup_steps=p.n_warmup_steps,
        interval_steps=p.interval_steps,
        n_min_trials=1,
    )


def _successive_halving(cfg: Config) -> optuna.pruners.BasePruner:
    p = cfg.tune.pruner
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=p.min_resource,
        reduction_factor=p.reduction_factor,
        min_early_stopping_rate=p.min_early_stopping_rate,
        bootstrap_count=0,
    )


def _hyperband(cfg: Config) -> optuna.pruners.BasePruner:
    p = cfg.tune.pruner
    max_resource = p.max_resource or fidelity_steps(cfg)
    if max_resource < p.min_resource:
        raise ConfigError(
            f"tune.pruner.min_resource ({p.min_resource}) exceeds max_resource ({max_resource}, "
            "tune.pruner.max_resource or the number of fidelity steps)"
        )
    return optuna.pruners.HyperbandPruner(
        min_resource=p.min_resource,
        max_resource=max_resource,
        reduction_factor=p.reduction_factor,
        bootstrap_count=0,
    )


_PRUNERS: dict[str, Callable[[Config], optuna.pruners.BasePruner]] = {
    "none": _none,
    "median": _median,
    "percentile": _percentile,
    "successive_halving": _successive_halving,
    "hyperband": _hyperband,
}
