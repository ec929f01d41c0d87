"""When a study stops, and what the trial loop does next: one pure decision over the study's tally and the stop rules."""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass

from tunedag.config import Config


@dataclass(frozen=True)
class Snapshot:
    """What the loop knows before each decision; every count is the shared study's (all workers) unless named ours."""

    started: tuple[int, ...]  # numbers of the finished (COMPLETE, PRUNED) and RUNNING trials, in order
    finished: int  # COMPLETE and PRUNED
    best: tuple[int, float] | None  # (number, value) of the best complete trial, single objective
    since_best: int  # finished trials numbered after the best one
    ours_running: int  # trials this loop has in flight
    failures: int  # genuine failures this loop told (interrupted and surplus trials never count)
    grid_left: int | None = None  # grid points not yet asked (grid sampler), else None
    queued: int | None = None  # WAITING (enqueued) trials (manual sampler), else None
    interrupted: bool = False
    space_left: int | None = None  # configurations of a finite space not held yet (studies.configurations)
    stuck: bool = False  # the sampler proposed a configuration the study holds, and no random draw found a new one


@dataclass(frozen=True)
class Decision:
    action: str  # "launch", "wait" (for running trials, ours or other workers') or "stop"
    reason: str | None = None


class StopRules:
    """The study's stop rules from `tune.*`: budget, failures, timeout (from `started`), patience, target."""

    def __init__(self, cfg: Config, started: float | None = None):
        self.tune = cfg.tune
        self.deadline = (started or time.monotonic()) + cfg.tune.timeout if cfg.tune.timeout else math.inf

    def verdict(self, s: Snapshot, now: float) -> str | None:
        """Why the study is done (timeout, target, patience), or None."""
        tune = self.tune
        if now >= self.deadline:
            return f"timeout of {tune.timeout} s reached"
        if s.best is None or len(tune.directions) > 1:
            return None
        number, value = s.best
        if tune.target is not None and (value >= tune.target if tune.resolved_direction == "maximize" else value <= tune.target):
            return f"target {tune.target} reached by trial {number}"
        if tune.patience is not None and s.since_best >= tune.patience:
            return f"no improvement in {s.since_best} trials (patience {tune.patience})"
        return None


def decide(s: Snapshot, rules: StopRules, now: float) -> Decision:
    """Launch another trial, wait for running ones, or stop (with why); the trial loop's only decision.

    The budget `n_trials` is global: running trials of every worker count against it, and when
    they hold the rest of it the loop waits (they may fail, and leave budget).
    """
    tune = rules.tune
    if s.interrupted:
        return Decision("stop", "interrupted")
    if s.failures > tune.max_failed_trials:
        return Decision("stop", f"{s.failures} failed trials (tune.max_failed_trials {tune.max_failed_trials})")
    if tune.n_trials - len(s.started) <= 0:
        if s.finished >= tune.n_trials:
            return Decision("stop", f"n_trials {tune.n_trials} reached")
        return Decision("wait", "the rest of the budget is running")
    if s.grid_left is not None and s.grid_left <= 0:
        return Decision("stop", "grid exhausted")
    if s.queued is not None and s.queued == 0:
        return Decision("stop", "every tune.enqueue configuration evaluated")
    if s.space_left is not None and s.space_left <= 0:
        return Decision("stop", "search space exhausted: the study holds every configuration in it")
    if s.stuck:
        return Decision("stop", "no new configuration: the sampler and random draws found only ones the study holds")
    reason = rules.verdict(s, now)
    if reason:
        return Decision("stop", reason)
    if s.ours_running >= tune.parallelism:
        return Decision("wait", "parallelism reached")
    return Decision("launch")


def is_surplus(started: tuple[int, ...], n_trials: int, number: int) -> bool:
    """Whether the just-asked trial `number` lies beyond the budget: `n_trials` started trials come before it.

    Workers that asked at once agree, as every one counts the same numbers.
    """
    return n_trials - bisect.bisect_right(started, number) < 0
