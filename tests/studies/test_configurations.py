"""Which configurations a study holds (studies.configurations): what the trial loop checks before it runs one."""

from __future__ import annotations

import os
import socket
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState
from pydantic import TypeAdapter

from compat.optuna import queued_params
from studies import configurations
from studies.configurations import DRAWN_AFTER, WAIT_S, count_held, enqueue_unheld, twin_of
from studies.storage import WORKER_ATTR, build_storage, claim
from tunedag.config import Family, Param

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # PartialFixedSampler


def _ask(study: optuna.Study, params: dict) -> optuna.Trial:
    """A RUNNING trial that sampled `params`, as one asked by a sampler (not enqueued) does."""
    study.sampler = optuna.samplers.PartialFixedSampler(params, optuna.samplers.RandomSampler())
    trial = study.ask()
    for name in params:
        trial.suggest_int(name, 1, 9) if name == "depth" else trial.suggest_categorical(name, ["a", "b"])
    assert trial.params == params
    return trial


def _with(study: optuna.Study, params: dict, state: TrialState | None) -> int:
    """A trial holding `params` in `state` (None: left RUNNING); its number."""
    trial = _ask(study, params)
    if state == TrialState.COMPLETE:
        study.tell(trial, 0.5)
    elif state is not None:
        study.tell(trial, state=state)
    return trial.number


LATER = 10**6  # the number of a trial asked after every one in the study


def test_complete_pruned_running_and_queued_trials_hold_their_configuration_failed_ones_do_not():
    study = optuna.create_study()
    numbers = {
        state: _with(study, {"depth": i, "kind": "a"}, state)
        for i, state in enumerate([TrialState.COMPLETE, TrialState.PRUNED, None, TrialState.FAIL], 1)
    }
    asking = _ask(study, {"depth": 9, "kind": "b"})
    study.enqueue_trial({"depth": 5, "kind": "b"})

    assert twin_of(study, LATER, {"kind": "a", "depth": 1}) == numbers[TrialState.COMPLETE]  # order of names aside
    assert twin_of(study, LATER, {"depth": 2, "kind": "a"}) == numbers[TrialState.PRUNED]
    assert twin_of(study, LATER, {"depth": 3, "kind": "a"}) == numbers[None]
    assert twin_of(study, LATER, {"depth": 4, "kind": "a"}) is None  # failed: it may run again (a re-queued one must)
    assert twin_of(study, LATER, {"depth": 5, "kind": "b"}) == len(study.trials) - 1  # queued
    assert twin_of(study, asking.number, {"depth": 9, "kind": "b"}) is None  # only itself holds it
    assert twin_of(study, LATER, {"depth": 1, "kind": "b"}) is None
    assert count_held(study) == 4  # the queued one is still to run


def test_of_two_running_or_queued_trials_with_one_configuration_the_later_is_the_repeat():
    """Two workers drew one configuration: the first asked runs it, whichever checks first; a finished one holds it from all."""
    study = optuna.create_study()
    first, second = _ask(study, {"depth": 3, "kind": "a"}), _ask(study, {"depth": 3, "kind": "a"})
    assert twin_of(study, first.number, first.params) is None and twin_of(study, second.number, second.params) == first.number
    study.enqueue_trial({"depth": 3, "kind": "a"})  # queued after the first: not held against it
    assert twin_of(study, first.number, first.params) is None
    study.tell(second, 0.5)  # finished: it holds the configuration against the first too
    assert twin_of(study, first.number, first.params) == second.number


def test_the_first_holder_is_named_and_a_trial_that_ends_failed_stops_holding():
    study = optuna.create_study()
    first = _with(study, {"depth": 2, "kind": "b"}, TrialState.COMPLETE)
    _with(study, {"depth": 2, "kind": "b"}, TrialState.COMPLETE)  # an earlier tunedag's repeat
    running = _ask(study, {"depth": 7, "kind": "a"})
    assert twin_of(study, LATER, {"depth": 2, "kind": "b"}) == first and count_held(study) == 2

    study.tell(running, state=TrialState.FAIL)  # the scan kept from the last call must not keep it
    assert twin_of(study, LATER, {"depth": 7, "kind": "a"}) is None and count_held(study) == 1
    _with(study, {"depth": 7, "kind": "a"}, TrialState.COMPLETE)
    assert twin_of(study, LATER, {"depth": 7, "kind": "a"}) == 3 and count_held(study) == 2


def test_another_process_s_trials_are_seen_through_the_shared_storage(storage_url):
    """Two handles on one storage, as two drivers of one study: each sees what the other holds."""
    ours = optuna.create_study(study_name="s", storage=build_storage(storage_url, False))
    theirs = optuna.load_study(study_name="s", storage=build_storage(storage_url, False))
    assert count_held(ours) == 0
    other = _with(theirs, {"depth": 4, "kind": "b"}, None)
    theirs.enqueue_trial({"depth": 6, "kind": "a"})
    assert twin_of(ours, LATER, {"depth": 4, "kind": "b"}) == other
    assert twin_of(ours, LATER, {"depth": 6, "kind": "a"}) == other + 1 and count_held(ours) == 1


def test_an_earlier_trial_another_worker_is_still_sampling_is_waited_for(storage_url):
    """The race of two workers: the later-asked one checks before the earlier one has its parameters."""
    ours = optuna.create_study(study_name="s", storage=build_storage(storage_url, False))
    theirs = optuna.load_study(study_name="s", storage=build_storage(storage_url, False))
    theirs.sampler = optuna.samplers.PartialFixedSampler({"depth": 3, "kind": "a"}, optuna.samplers.RandomSampler())
    sampling = theirs.ask()
    claim(sampling)  # a live worker's, with no parameters yet
    sampling.suggest_categorical("kind", ["a", "b"])  # one of two so far
    later = _ask(ours, {"depth": 3, "kind": "a"})
    started = time.monotonic()
    assert twin_of(ours, later.number, {"depth": 3, "kind": "b"}) is None  # it cannot become that one: no wait
    assert time.monotonic() - started < WAIT_S / 10

    finish = threading.Timer(0.5, lambda: sampling.suggest_int("depth", 1, 9))
    finish.start()
    started = time.monotonic()
    assert twin_of(ours, later.number, later.params) == sampling.number  # without the wait: None, and both would run it
    assert 0.4 <= time.monotonic() - started < WAIT_S / 10
    finish.join()


def test_a_dead_worker_s_half_sampled_trial_is_not_waited_for(storage_url):
    study = optuna.create_study(study_name="s", storage=build_storage(storage_url, False))
    study.sampler = optuna.samplers.PartialFixedSampler({"kind": "a"}, optuna.samplers.RandomSampler())
    orphan = study.ask()
    orphan.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}:0")  # this pid, another start: gone
    orphan.suggest_categorical("kind", ["a", "b"])
    started = time.monotonic()
    assert twin_of(study, LATER, {"depth": 3, "kind": "a"}) is None
    assert time.monotonic() - started < WAIT_S / 10


def test_a_live_worker_s_trial_sampling_for_longer_than_the_wait_is_not_waited_for_again(storage_url, monkeypatch):
    """A hung worker: its half-sampled trial would otherwise hold up every later trial that agrees with it."""
    monkeypatch.setattr(configurations, "WAIT_S", 1.0)
    study = optuna.create_study(study_name="s", storage=build_storage(storage_url, False))
    study.sampler = optuna.samplers.PartialFixedSampler({"kind": "a"}, optuna.samplers.RandomSampler())
    stuck = study.ask()
    claim(stuck)  # this process: alive
    stuck.suggest_categorical("kind", ["a", "b"])
    time.sleep(1.1)
    started = time.monotonic()
    assert twin_of(study, LATER, {"depth": 3, "kind": "a"}) is None
    assert time.monotonic() - started < 0.5  # the deadline alone would wait 1 s


def test_a_repeat_queues_a_random_configuration_the_study_does_not_hold_until_none_is_left():
    space = TypeAdapter(dict[str, Param]).validate_python(
        {"depth": {"type": "int", "low": 1, "high": 2}, "kind": {"type": "categorical", "choices": ["a", "b"]}}
    )
    families = {"": Family("sklearn.tree.DecisionTreeClassifier", {}, space)}
    study = optuna.create_study()
    for depth, kind in [(1, "a"), (2, "a"), (2, "b")]:
        _with(study, {"depth": depth, "kind": kind}, TrialState.COMPLETE)
    number = _with(study, {"depth": 2, "kind": "a"}, TrialState.FAIL)
    repeat = study.trials[number]

    assert enqueue_unheld(study, families, seed=7, repeat=repeat)
    queued = study.trials[-1]
    assert queued.state == TrialState.WAITING and queued_params(queued) == {"depth": 1, "kind": "b"}  # the one left
    assert queued.user_attrs[DRAWN_AFTER] == repeat.number
    assert not enqueue_unheld(study, families, seed=7, repeat=repeat)  # the queued one holds the last: none to draw
    assert len(study.trials) == 5


def test_draws_follow_the_seed():
    space = TypeAdapter(dict[str, Param]).validate_python({"depth": {"type": "int", "low": 1, "high": 1000}})
    families = {"": Family("sklearn.tree.DecisionTreeClassifier", {}, space)}
    drawn = []
    for _ in range(2):
        study = optuna.create_study()
        number = _with(study, {"depth": 5}, TrialState.FAIL)
        repeat = study.trials[number]
        assert enqueue_unheld(study, families, seed=3, repeat=repeat)
        drawn.append(queued_params(study.trials[-1]))
    assert drawn[0] == drawn[1] and drawn[0] != {"depth": 5}
