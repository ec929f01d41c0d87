"""When a study stops: trial budget, time, patience, target value, an exhausted grid or queue."""

from __future__ import annotations

import math
import time

import optuna
from optuna.trial import TrialState

from tunedag.config import Config
from tunedag.study import FINISHED


class StopRules:
    """Whether to launch another trial; `reason` says why not, once it is decided."""

    def __init__(self, cfg: Config, started: float | None = None):
        self.tune = cfg.tune
        self.deadline = (started or time.monotonic()) + cfg.tune.timeout if cfg.tune.timeout else math.inf
        self.reason: str | None = None

    def study_done(self, study: optuna.Study) -> bool:
        """Patience or target reached (single-objective studies); sets `reason`."""
        if len(study.directions) > 1:
            return False
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return False
        best = study.best_trial
        if self.tune.target is not None and _reached(best.value, self.tune.target, self.tune.resolved_direction):
            self.reason = f"target {self.tune.target} reached by trial {best.number}"
        elif self.tune.patience is not None:
            since = sum(t.number > best.number for t in study.get_trials(deepcopy=False, states=FINISHED))
            if since >= self.tune.patience:
                self.reason = f"no improvement in {since} trials (patience {self.tune.patience})"
        return self.reason is not None

    def out_of_time(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.reason = f"timeout of {self.tune.timeout} s reached"
        return self.reason is not None


def _reached(value: float, target: float, direction: str) -> bool:
    return value >= target if direction == "maximize" else value <= target
