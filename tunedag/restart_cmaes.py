"""CMA-ES with IPOP / BIPOP restarts, as an Optuna sampler.

Optuna's CmaEsSampler stopped restarting in 4.4 (`restart_strategy` is accepted and ignored) and
the replacement on OptunaHub is fetched from GitHub at run time. Here the `cmaes` package, the
library under Optuna's own sampler, runs each CMA-ES and says when it has converged
(`should_stop`); a converged run is replaced by a fresh one from a uniformly random start:

- IPOP (Auger & Hansen 2005): each restart multiplies the population by `inc_popsize`.
- BIPOP (Hansen 2009, as pycma runs it): restarts alternate between a large regime (population
  `popsize * inc_popsize**k` for the k-th large run) and a small one (a random population between
  the default and the last large one, step size `sigma0 * 10**(-2U)`), whichever regime has used
  fewer evaluations so far; the first run counts as large.

Optuna supplies the rest: the numeric search space (IntersectionSearchSpace), the transform to
[0, 1] with rounding back to int / step values, and independent sampling (RandomSampler) for
categorical or conditional parameters. As in CmaEsSampler, the state (optimizer, restart count,
BIPOP budgets) is pickled into the system attrs of the trial that told a generation, so several
asks before a tell, ask/tell drivers and a study resumed in another process all continue it.
Randomness comes from the seed with the trial number or restart index, not from process state,
so a seeded study told sequentially replays exactly.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, cast

import cmaes
import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from compat.optuna import SearchSpaceTransform, study_storage, trial_id

Optimizer = Union[cmaes.CMA, cmaes.SepCMA, cmaes.CMAwM]

PREFIX = "restart_cmaes:"
GENERATION = PREFIX + "generation"  # on every trial: [restart, generation] it was sampled for
POPSIZE = PREFIX + "popsize"  # on every trial: the population of its run
RESTARTS = PREFIX + "restarts"  # on every trial: how many restarts happened before it
_STATE = PREFIX + "state"  # on a trial that told a generation: the pickled _State, in chunks
_STATE_KEY = PREFIX + "state_key"  # ... and the [restart, generation] that state is at
_X_FOR_TELL = PREFIX + "x_for_tell"  # CMA-ES with margin tells the continuous point, not the rounded one
_CHUNK = 2045  # longest system attr an RDB storage has always accepted (Optuna's CmaEsSampler splits the same way)


@dataclass
class _State:
    """What the restart strategy carries from one generation to the next."""

    optimizer: Optimizer
    names: tuple[str, ...]
    restarts: int = 0
    n_large: int = 0  # BIPOP: restarts so far in the large-population regime
    regime: Literal["small", "large"] = "large"
    evals: dict[str, int] = field(default_factory=lambda: {"small": 0, "large": 0})

    @property
    def key(self) -> list[int]:
        """[restart, generation]: identifies the population trials are sampled for."""
        return [self.restarts, self.optimizer.generation]


class RestartCmaEsSampler(BaseSampler):
    """CMA-ES over the numeric parameters, restarted with a larger population when it converges.

    Args:
        restart_strategy: "ipop", "bipop", or None for a single run (never restarted).
        popsize: population of the first run; None for CMA-ES's default 4 + 3 ln(dimension).
        inc_popsize: factor applied to the population at each IPOP (or large BIPOP) restart.
        sigma0: initial step size in the search space scaled to [0, 1]; None for 1/6.
        n_startup_trials: completed trials sampled independently before CMA-ES starts.
        use_separable_cma: diagonal covariance (sep-CMA-ES), for many parameters.
        with_margin: CMA-ES with margin, which keeps int / step parameters from freezing.
        seed: seed of every random choice; None for a fresh one.
        independent_sampler: for categorical and conditional parameters (default RandomSampler(seed)).
    """

    def __init__(
        self,
        *,
        restart_strategy: Literal["ipop", "bipop"] | None = "ipop",
        popsize: int | None = None,
        inc_popsize: int = 2,
        sigma0: float | None = None,
        n_startup_trials: int = 1,
        use_separable_cma: bool = False,
        with_margin: bool = False,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
    ) -> None:
        if restart_strategy not in ("ipop", "bipop", None):
            raise ValueError(f"restart_strategy must be 'ipop', 'bipop' or None, not {restart_strategy!r}")
        if use_separable_cma and with_margin:
            raise ValueError("use_separable_cma and with_margin cannot be combined (cmaes has no separable CMA-ES with margin)")
        if inc_popsize < 1 or (popsize is not None and popsize < 2):
            raise ValueError("inc_popsize must be >= 1 and popsize >= 2")
        self._strategy = restart_strategy
        self._popsize, self._inc, self._sigma0 = popsize, inc_popsize, 1 / 6 if sigma0 is None else sigma0
        self._n_startup_trials = n_startup_trials
        self._separable, self._margin = use_separable_cma, with_margin
        self._seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else seed
        self._independent = independent_sampler or RandomSampler(seed=seed)
        self._space = IntersectionSearchSpace()

    def reseed_rng(self) -> None:  # noqa: D102 - CMA-ES draws are derived from the seed and trial number
        self._independent.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The int and float parameters common to every trial so far, except single-valued ones."""
        return {
            name: d
            for name, d in self._space.calculate(study).items()
            if isinstance(d, (FloatDistribution, IntDistribution)) and not d.single()
        }

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Tell a full generation if there is one (restarting a converged run), then ask one point."""
        self._raise_error_if_multi_objective(study)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if not search_space or len(complete) < self._n_startup_trials:
            return {}
        trans = SearchSpaceTransform(search_space, transform_step=not self._margin, transform_0_1=True)
        state = _restore(trials)
        if state is None:
            first = self._optimizer(search_space, np.full(len(search_space), 0.5), self._sigma0, seed=self._derive(1, 0))
            state = _State(first, tuple(search_space))
        if state.names != tuple(search_space):
            return {}  # the numeric space changed under CMA-ES: the independent sampler takes over, as in Optuna
        if self._tell(study, state, trans, complete):
            if self._strategy is not None and state.optimizer.should_stop():
                state = self._restart(state, search_space)
            _store(study, trial, state)
        return self._ask(study, trial, state, trans)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        """A parameter outside the CMA-ES space, from the independent sampler."""
        self._raise_error_if_multi_objective(study)
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:  # noqa: D102
        self._independent.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:  # noqa: D102
        self._independent.after_trial(study, trial, state, values)

    def _tell(self, study: optuna.Study, state: _State, trans: SearchSpaceTransform, complete: list[FrozenTrial]) -> bool:
        """Update the optimizer with the first `popsize` completed trials of its generation, if there are as many."""
        opt, key = state.optimizer, state.key
        batch = [t for t in complete if t.system_attrs.get(GENERATION) == key][: opt.population_size]
        if len(batch) < opt.population_size:
            return False
        sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
        opt.tell([(self._x(t, trans), sign * float(t.value)) for t in batch])  # type: ignore[arg-type]
        return True

    def _ask(self, study: optuna.Study, trial: FrozenTrial, state: _State, trans: SearchSpaceTransform) -> dict[str, Any]:
        opt = state.optimizer
        opt.reseed_rng(self._derive(0, trial.number))
        storage = study_storage(study)  # as Optuna's samplers do: the trial is RUNNING, owned by this sampler call
        if isinstance(opt, cmaes.CMAwM):
            x, x_for_tell = opt.ask()
            storage.set_trial_system_attr(trial_id(trial), _X_FOR_TELL, x_for_tell.tolist())
        else:
            x = opt.ask()
        for key, value in ((GENERATION, state.key), (POPSIZE, opt.population_size), (RESTARTS, state.restarts)):
            storage.set_trial_system_attr(trial_id(trial), key, value)
        return trans.untransform(x)

    def _restart(self, state: _State, space: dict[str, BaseDistribution]) -> _State:
        """A fresh run from a uniformly random start, with the population the strategy picks next."""
        rng = np.random.RandomState(self._derive(2, state.restarts))
        popsize0, sigma = self._popsize0(len(space)), self._sigma0
        evals = dict(state.evals)
        evals[state.regime] += state.optimizer.population_size * state.optimizer.generation
        n_large, regime = state.n_large, cast(Literal["small", "large"], "large")
        if self._strategy == "ipop":
            popsize = state.optimizer.population_size * self._inc
        elif evals["small"] < evals["large"]:  # BIPOP, small regime: a local search
            regime = "small"
            popsize = math.floor(popsize0 * (self._inc**n_large) ** (rng.uniform() ** 2))
            sigma *= 10 ** (-2 * rng.uniform())
        else:  # BIPOP, large regime
            n_large += 1
            popsize = popsize0 * self._inc**n_large
        mean = rng.uniform(0.0, 1.0, len(space))  # the space is scaled to [0, 1]
        opt = self._optimizer(space, mean, sigma, seed=self._derive(1, state.restarts + 1), popsize=popsize)
        return _State(opt, state.names, state.restarts + 1, n_large, regime, evals)

    def _optimizer(
        self, space: dict[str, BaseDistribution], mean: np.ndarray, sigma: float, seed: int, popsize: int | None = None
    ) -> Optimizer:
        """A CMA-ES over `space` scaled to [0, 1], as Optuna's CmaEsSampler builds it."""
        kwargs: dict[str, Any] = dict(
            mean=mean,
            sigma=sigma,
            bounds=np.array([[0.0, 1.0]] * len(space)),
            seed=seed,
            n_max_resampling=10 * len(space),
            population_size=popsize or self._popsize0(len(space)),
        )
        if self._separable and len(mean) > 1:  # sep-CMA-ES is meaningless in one dimension
            return cmaes.SepCMA(**kwargs)
        if self._margin:
            steps = [
                0.0 if d.step is None or d.log else d.step / (d.high - d.low)  # type: ignore[union-attr]
                for d in space.values()
            ]
            return cmaes.CMAwM(steps=np.array(steps), **kwargs)
        return cmaes.CMA(**kwargs)

    def _popsize0(self, dim: int) -> int:
        return self._popsize or 4 + math.floor(3 * math.log(dim))

    def _x(self, trial: FrozenTrial, trans: SearchSpaceTransform) -> np.ndarray:
        if self._margin:
            return np.array(trial.system_attrs[_X_FOR_TELL])
        return trans.transform(trial.params)

    def _derive(self, stream: int, index: int) -> int:
        """A seed for (stream, index) that depends only on the sampler's seed: 0 asks, 1 optimizers, 2 restarts."""
        return int(np.random.SeedSequence([self._seed, stream, index]).generate_state(1)[0] % (2**31 - 1))


def _restore(trials: list[FrozenTrial]) -> _State | None:
    """The most advanced state any trial (running ones included) has stored, or None before the first tell."""
    holders = [t for t in trials if _STATE_KEY in t.system_attrs]
    if not holders:
        return None
    attrs = max(holders, key=lambda t: t.system_attrs[_STATE_KEY]).system_attrs
    chunks = "".join(attrs[f"{_STATE}:{i}"] for i in range(attrs[_STATE + ":n"]))
    return pickle.loads(bytes.fromhex(chunks))


def _store(study: optuna.Study, trial: FrozenTrial, state: _State) -> None:
    text = pickle.dumps(state).hex()
    chunks = [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)]
    for i, chunk in enumerate(chunks):
        study_storage(study).set_trial_system_attr(trial_id(trial), f"{_STATE}:{i}", chunk)
    study_storage(study).set_trial_system_attr(trial_id(trial), _STATE + ":n", len(chunks))
    study_storage(study).set_trial_system_attr(trial_id(trial), _STATE_KEY, state.key)
