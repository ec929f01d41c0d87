"""A study continued, resumed or driven twice continues its sampler's sequence, never replays it (issue 23, item 3).

Each case drives real studies built by `studies.storage` (journal storage, the configured sampler)
ask/tell through `tunedag.space.suggest`, as the tune flow does.
"""

from __future__ import annotations

import socket
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from studies.storage import WORKER_ATTR, join_study, open_study, recover_orphans
from tests.tunedag.test_samplers_contract import make_cfg, score
from tunedag.samplers import build_sampler, continuation_seed
from tunedag.space import suggest

# GP refits a Gaussian process per trial: tens of seconds a case here, so its cases run with the slow set.
SAMPLERS = ["random", "tpe", pytest.param("gp", marks=pytest.mark.slow), "cmaes", "qmc"]


def _cfg(sampler: str, tmp_path, **tune: Any):
    return make_cfg(sampler, storage=str(tmp_path / "study.journal"), **tune)


def _drive(study: optuna.Study, cfg, n: int) -> None:
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, score(suggest(trial, cfg.families)))


def _repeats(study: optuna.Study) -> list[dict]:
    """Configurations that more than one complete trial of the study evaluated."""
    seen: list[dict] = []
    repeats = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        (repeats if trial.params in seen else seen).append(trial.params)
    return repeats


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_raising_n_trials_from_10_to_20_draws_10_new_configurations(sampler: str, tmp_path) -> None:
    cfg = _cfg(sampler, tmp_path)
    _drive(open_study(cfg, "v1"), cfg, 10)
    study = open_study(cfg, "v1")  # the second `tunedag tune`, n_trials 20: the same study, 10 trials more
    _drive(study, cfg, 10)

    assert len(study.trials) == 20 and _repeats(study) == []


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_study_resumed_after_a_kill_does_not_replay_the_killed_draws(sampler: str, tmp_path) -> None:
    cfg = _cfg(sampler, tmp_path)
    first = open_study(cfg, "v1")
    _drive(first, cfg, 2)  # killed within the startup trials, which every model-based sampler draws at random
    for _ in range(2):  # asked, then the process died (kill -9): RUNNING, owned by a process that is gone
        trial = first.ask()
        suggest(trial, cfg.families)
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:999999999:0")

    study = open_study(cfg, "v1")  # the new process, as flows.tune starts it
    recover_orphans(study, cfg.families)
    while len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 10:
        _drive(study, cfg, 1)

    assert _repeats(study) == []


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("second", ["worker", "tune"])
def test_two_drivers_on_one_study_draw_different_configurations(sampler: str, second: str, tmp_path) -> None:
    cfg = _cfg(sampler, tmp_path)
    a = open_study(cfg, "v1")
    b = join_study(cfg, "v1") if second == "worker" else open_study(cfg, "v1")  # `tunedag worker`, or a second `tunedag tune`
    for _ in range(8):  # both ask before either tells, as two processes at once
        ta, tb = a.ask(), b.ask()
        pa, pb = suggest(ta, cfg.families), suggest(tb, cfg.families)
        a.tell(ta, score(pa))
        b.tell(tb, score(pb))

    assert len(a.trials) == 16 and _repeats(a) == []


@pytest.mark.parametrize("sampler", SAMPLERS + ["nsga2"])
def test_one_uninterrupted_driver_on_an_empty_study_is_raw_optuna_with_the_seed(sampler: str, tmp_path) -> None:
    cfg = _cfg(sampler, tmp_path)
    study = open_study(cfg, "v1")
    _drive(study, cfg, 8)
    raw = optuna.create_study(directions=cfg.tune.directions, sampler=build_sampler(cfg))
    _drive(raw, cfg, 8)

    assert [t.params for t in study.trials] == [t.params for t in raw.trials]


def test_the_continuation_seed_is_the_seed_only_for_the_first_driver_of_an_empty_study() -> None:
    assert continuation_seed(7, 0) == 7
    seeds = {
        continuation_seed(7, 10),
        continuation_seed(7, 20),
        continuation_seed(7, 0, "host:1:2"),
        continuation_seed(7, 0, "host:3:4"),
        continuation_seed(8, 10),
    }
    assert len(seeds) == 5 and 7 not in seeds
    assert continuation_seed(7, 10) == continuation_seed(7, 10)  # a resume is reproducible from the study's own count
