"""The search-strategy part of `params.yaml`: samplers, pruners, fidelity, stopping, selection.

Every sampler and pruner argument is explicit here, so a library default that moves between
Optuna releases never changes a study silently.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from tunedag.config_types import Float, Int
from tunedag.errors import redact


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GridSamplerConfig(_Strict):
    """Exhaustive search over the declared grid; the study stops when the grid is exhausted."""

    name: Literal["grid"]


class RandomSamplerConfig(_Strict):
    name: Literal["random"]


class TpeSamplerConfig(_Strict):
    """Tree-structured Parzen estimator (Bayesian optimisation)."""

    name: Literal["tpe"]
    n_startup_trials: Int = Field(10, ge=0)
    n_ei_candidates: Int = Field(24, ge=1)
    multivariate: bool = True
    group: bool = True  # multivariate per sub-space of a conditional space
    constant_liar: bool = True  # pending trials count as bad, so parallel asks spread out
    consider_endpoints: bool = False
    prior_weight: Float = Field(1.0, gt=0)


class GpSamplerConfig(_Strict):
    """Gaussian-process Bayesian optimisation."""

    name: Literal["gp"]
    n_startup_trials: Int = Field(10, ge=0)
    deterministic_objective: bool = False


class CmaEsSamplerConfig(_Strict):
    """CMA-ES evolution strategy, with IPOP / BIPOP restarts.

    `restart_strategy: null` runs Optuna's CmaEsSampler once (no restarts, Optuna's default);
    `ipop` / `bipop` run `tunedag.restart_cmaes.RestartCmaEsSampler`, which starts a fresh CMA-ES
    from a random point when the current one has converged (cmaes' `should_stop`): IPOP multiplies
    the population by `inc_popsize` at each restart, BIPOP alternates such large runs with small
    local ones. `inc_popsize` is used only by restarts; `popsize` is the first run's population
    (null: 4 + 3 ln(number of numeric parameters)).
    """

    name: Literal["cmaes"]
    n_startup_trials: Int = Field(1, ge=0)
    sigma0: Float | None = Field(None, gt=0)
    restart_strategy: Literal["ipop", "bipop"] | None = None
    popsize: Int | None = Field(None, ge=2)
    inc_popsize: Int = Field(2, ge=1)
    use_separable_cma: bool = False
    with_margin: bool = False


class QmcSamplerConfig(_Strict):
    """Quasi-Monte Carlo: low-discrepancy Sobol or Halton sequences."""

    name: Literal["qmc"]
    qmc_type: Literal["sobol", "halton"] = "sobol"
    scramble: bool = True


class Nsga2SamplerConfig(_Strict):
    """NSGA-II genetic algorithm, for multi-objective studies."""

    name: Literal["nsga2"]
    population_size: Int = Field(20, ge=2)
    mutation_prob: Float | None = Field(None, ge=0, le=1)
    crossover_prob: Float = Field(0.9, ge=0, le=1)
    swapping_prob: Float = Field(0.5, ge=0, le=1)


class ManualSamplerConfig(_Strict):
    """Evaluate only the configurations listed in `tune.enqueue`."""

    name: Literal["manual"]


SamplerConfig = Annotated[
    Union[
        GridSamplerConfig,
        RandomSamplerConfig,
        TpeSamplerConfig,
        GpSamplerConfig,
        CmaEsSamplerConfig,
        QmcSamplerConfig,
        Nsga2SamplerConfig,
        ManualSamplerConfig,
    ],
    Field(discriminator="name"),
]
SAMPLER_NAMES = ("grid", "random", "tpe", "gp", "cmaes", "qmc", "nsga2", "manual")


class NoPrunerConfig(_Strict):
    name: Literal["none"]


class MedianPrunerConfig(_Strict):
    """Stop a trial whose intermediate value is worse than the median of earlier trials at that step."""

    name: Literal["median"]
    n_startup_trials: Int = Field(5, ge=0)
    n_warmup_steps: Int = Field(0, ge=0)
    interval_steps: Int = Field(1, ge=1)


class PercentilePrunerConfig(_Strict):
    name: Literal["percentile"]
    percentile: Float = Field(25.0, gt=0, lt=100)
    n_startup_trials: Int = Field(5, ge=0)
    n_warmup_steps: Int = Field(0, ge=0)
    interval_steps: Int = Field(1, ge=1)


class SuccessiveHalvingPrunerConfig(_Strict):
    name: Literal["successive_halving"]
    min_resource: Int = Field(1, ge=1)
    reduction_factor: Int = Field(3, ge=2)
    min_early_stopping_rate: Int = Field(0, ge=0)


class HyperbandPrunerConfig(_Strict):
    name: Literal["hyperband"]
    min_resource: Int = Field(1, ge=1)
    max_resource: Int | None = Field(None, ge=1)  # None: the number of fidelity steps
    reduction_factor: Int = Field(3, ge=2)


PrunerConfig = Annotated[
    Union[NoPrunerConfig, MedianPrunerConfig, PercentilePrunerConfig, SuccessiveHalvingPrunerConfig, HyperbandPrunerConfig],
    Field(discriminator="name"),
]
PRUNER_NAMES = ("none", "median", "percentile", "successive_halving", "hyperband")


class FidelityConfig(_Strict):
    """The steps at which a trial reports an intermediate value (and may be pruned).

    - `folds`: each cross-validation fold is a step (needs `data.cv_folds` >= 2).
    - `train_fraction`: fit on growing fractions of the training split, e.g. [0.25, 0.5, 1.0].
    - `ensemble_size`: grow `param` (e.g. n_estimators) in `steps` equal increments with warm_start.
    - `epochs`: each training epoch of an estimator whose fit takes `on_epoch` (tunedag.nets), or
      each step a `train_fn` reports; the value is the estimator's `val_<tune.metric>` when it has
      one, else its validation loss (negated when tune.metric is maximised). The number of steps
      is the model's own (its `epochs`), so hyperband needs `tune.pruner.max_resource`.
    """

    kind: Literal["none", "folds", "train_fraction", "ensemble_size", "epochs"] = "none"
    fractions: list[Float] = Field(default_factory=lambda: [0.25, 0.5, 1.0])
    param: str = "n_estimators"
    steps: Int = Field(4, ge=2, le=100)

    @model_validator(mode="after")
    def _fractions(self) -> FidelityConfig:
        f = self.fractions
        if not f or any(not 0 < x <= 1 for x in f) or sorted(f) != f or f[-1] != 1.0:
            raise ValueError("fractions must rise within (0, 1] and end at 1.0")
        return self

    @property
    def n_steps(self) -> int:
        return {"train_fraction": len(self.fractions), "ensemble_size": self.steps}.get(self.kind, 0)


class SelectionConfig(_Strict):
    """How the final configuration is chosen from the Pareto front of a multi-objective study.

    - `best_primary`: the best value of `tune.metric`.
    - `within_tolerance`: among trials within `tolerance` (absolute) of the best `tune.metric`,
      the best on the next objective (e.g. the fastest model that is nearly as accurate).
    - `weighted`: the best weighted sum of objectives scaled to [0, 1] on the front, with
      `weights` in the order [tune.metric, *tune.objectives].
    """

    rule: Literal["best_primary", "within_tolerance", "weighted"] = "best_primary"
    tolerance: Float = Field(0.01, ge=0)
    weights: list[Float] = []


class WarmStartConfig(_Strict):
    """Seed the study with the best `top_k` configurations of an earlier study."""

    study: str
    storage: str | None = None  # None: the same as tune.storage
    top_k: Int = Field(5, ge=1)

    # Prefect stores flow parameters as JSON: a password in the URL must not go with them.
    _hide_storage_password = field_serializer("storage", when_used="json")(lambda self, v: v and redact(v))


class EnsembleConfig(_Strict):
    """Build the final model from the top-K configurations, refit on train + validation."""

    kind: Literal["none", "voting", "stacking"] = "none"
    top_k: Int = Field(3, ge=2, le=50)


def sampler_shorthand(value: Any) -> Any:
    """Accept `sampler: tpe` as `sampler: {name: tpe}`."""
    return {"name": value} if isinstance(value, str) else value


def pruner_shorthand(value: Any) -> Any:
    """Accept `pruner: median` (and `pruner: null`) as `pruner: {name: ...}`."""
    if value is None:
        return {"name": "none"}
    return {"name": value} if isinstance(value, str) else value
