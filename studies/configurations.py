"""The configurations a study holds, so that no trial evaluates one the study already has.

When the sampler proposes one the study holds, the trial loop does not run it, and queues a
configuration the study does not hold, drawn at random (`enqueue_unheld`), so that a sampler stuck
on one point of a small discrete space cannot fill the study with repeats.

A configuration is held by a COMPLETE or PRUNED trial (its score is known), a RUNNING one (being
evaluated, by any worker) and a WAITING one (queued); the last two only against trials asked after
them. A FAIL trial holds none: an interrupted trial is re-queued with its parameters, and a genuine
failure may be the machine's (its memory). Parameters are compared exactly, as Optuna stores them.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import RandomSampler
from optuna.trial import FrozenTrial, TrialState

from compat.optuna import queued_params
from studies.storage import owner_alive
from tunedag.config import Family
from tunedag.space import suggest

Key = tuple[tuple[str, Any], ...]
DUPLICATE_OF = "duplicate_of"  # the user attr of a trial not run because another trial holds its configuration: that one
DRAWN_AFTER = "drawn_after_repeat"  # the user attr of a configuration `enqueue_unheld` queued: the trial that repeated
DRAWS = 1000
WAIT_S = 30.0  # the longest `twin_of` waits for an earlier trial still being sampled by another live worker


def key(params: dict[str, Any]) -> Key:
    """A configuration as a hashable value (names are unique, so values are never compared in the sort)."""
    return tuple(sorted(params.items()))


def twin_of(study: optuna.Study, number: int, params: dict[str, Any]) -> int | None:
    """The number of the first trial that holds `params` against trial `number`, else None.

    A finished trial holds its configuration against any other; a running or queued one only against
    trials asked after it, so that of two workers that drew one configuration, the first asked runs it.
    An earlier trial that another live worker is still sampling, with the parameters it has so far
    agreeing with `params`, is waited for (up to `WAIT_S`): checking before it has all its parameters
    would let both workers run the configuration.
    """
    # The age rule (`_may_become`) reads another host's clock; this deadline on our own clock bounds the wait under skew.
    wanted, deadline = key(params), time.monotonic() + WAIT_S
    while True:
        finished, tail = _scan(study)  # the tail's numbers all come after the finished ones, in order
        if wanted in finished:
            return finished[wanted]
        earlier = [t for t in tail if t.number < number or t.state.is_finished()]
        if (twin := next((t.number for t in earlier if _held(t) == wanted), None)) is not None:
            return twin
        if not any(_may_become(t, params) for t in earlier) or time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def count_held(study: optuna.Study) -> int:
    """How many distinct configurations the study's finished and running trials hold (queued ones are still to run)."""
    finished, tail = _scan(study)
    more = {k for t in tail if t.state != TrialState.WAITING and (k := _held(t)) is not None and k not in finished}
    return len(finished) + len(more)


def enqueue_unheld(study: optuna.Study, families: dict[str, Family], seed: int, repeat: FrozenTrial) -> bool:
    """Queue a configuration the study does not hold, drawn by Optuna's `RandomSampler` with `seed`; False if
    `DRAWS` draws found none. `repeat` is the trial whose configuration the study held (a `BaseSampler` needs a trial).
    """
    finished, tail = _scan(study)
    held = finished.keys() | {k for t in tail if (k := _held(t)) is not None}
    draw = _Draw(study, repeat, RandomSampler(seed=seed))
    for _ in range(DRAWS):
        params = suggest(draw, families)
        if key(params) not in held:
            study.enqueue_trial(params, user_attrs={DRAWN_AFTER: repeat.number})
            return True
    return False


def stand_ins(study: optuna.Study) -> int:
    """How many trials are queued when every one is a configuration `enqueue_unheld` queued in place of a repeat, else 0
    (an interrupted trial's parameters or a listed configuration stay queued for a later run with a larger budget)."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return 0 if any(DRAWN_AFTER not in t.user_attrs for t in waiting) else len(waiting)


@dataclass
class _Draw:
    """What `tunedag.space.suggest` samples from, as from a trial: each parameter drawn by `sampler`, nothing stored."""

    study: optuna.Study
    trial: FrozenTrial
    sampler: RandomSampler

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False, step: float | None = None) -> float:
        return self._draw(name, FloatDistribution(low, high, log=log, step=step))

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        return self._draw(name, IntDistribution(low, high, log=log, step=step))

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self._draw(name, CategoricalDistribution(choices))

    def _draw(self, name: str, dist: BaseDistribution) -> Any:
        return self.sampler.sample_independent(self.study, self.trial, name, dist)


def _held(t: FrozenTrial) -> Key | None:
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return key(t.params)
    if t.state == TrialState.WAITING:
        return key(queued_params(t))
    return None


def _may_become(t: FrozenTrial, params: dict[str, Any]) -> bool:
    """Whether `t` is being sampled, by a live worker, towards `params` (each parameter it has so far agrees).

    One asked more than `WAIT_S` ago is taken as stuck, so that a hung worker delays no later trial again.
    """
    agrees = len(t.params) < len(params) and all(params.get(name, _NONE) == value for name, value in t.params.items())
    young = t.datetime_start is not None and time.time() - t.datetime_start.timestamp() < WAIT_S
    return t.state == TrialState.RUNNING and agrees and young and owner_alive(t)


_NONE = object()


@dataclass
class _Finished:
    """The held configurations of a study's leading run of finished trials, which never change again (as in `tally`)."""

    first: dict[Key, int] = field(default_factory=dict)  # configuration -> number of the first trial holding it
    length: int = 0  # how many of the study's first trials are covered


def _scan(study: optuna.Study) -> tuple[dict[Key, int], list[FrozenTrial]]:
    """The held configurations of the leading finished trials (kept from call to call), and the trials after them."""
    trials = study.get_trials(deepcopy=False)  # in number order, appended to, never removed
    done = _FINISHED.get(study)
    if done is None or len(trials) < done.length:
        done = _FINISHED[study] = _Finished()
    while done.length < len(trials) and trials[done.length].state.is_finished():
        t = trials[done.length]
        if (k := _held(t)) is not None:
            done.first.setdefault(k, t.number)
        done.length += 1
    return done.first, trials[done.length :]


_FINISHED: weakref.WeakKeyDictionary[optuna.Study, _Finished] = weakref.WeakKeyDictionary()
