"""What tunedag relies on from a study storage, over every storage mode (journal file, PostgreSQL).

studies/storage.py opens and creates studies, records which process owns a RUNNING trial,
seeds each driver's sampler from what the storage holds, recovers orphans, and lets several
processes ask, tell and re-queue on one study with one trial budget. Each test here runs once
per mode of `storage_url` (tests/studies/conftest.py), so a storage that behaved otherwise
in any of these fails by name.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

import studies.storage as storage
from compat.optuna import trial_id
from studies.storage import (
    HEARTBEAT_ATTR,
    STALE_S,
    WORKER_ATTR,
    beat,
    build_storage,
    claim,
    join_study,
    open_study,
    owner_alive,
    recover_orphans,
    study_name,
    tally,
    worker_id,
)
from tunedag.config import Config, load_config
from tunedag.errors import TunedagError
from tunedag.samplers import continuation_seed
from tunedag.space import suggest
from tunedag.stopping import is_surplus

REPO = Path(__file__).resolve().parents[2]
X = {"x": FloatDistribution(0.0, 1.0)}


def _cfg(url: str, **overrides) -> Config:
    return load_config(REPO / "params.yaml", {"tune.storage": url, "tune.sampler": {"name": "random"}, **overrides})


def _owner(pid: int) -> str:
    """The WORKER_ATTR a live process `pid` of this host would have written."""
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.0f}"


@pytest.fixture
def dead_owner() -> str:
    """The owner string of a process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}:{psutil.Process().create_time():.0f}"


@pytest.fixture
def live_owner() -> Iterator[str]:
    """The owner string of another live process of this host."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield _owner(proc.pid)
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- open / create


def test_open_creates_the_study_once_and_a_second_open_loads_it(storage_url):
    cfg = _cfg(storage_url)
    first = open_study(cfg, "v1")
    first.tell(first.ask(X), 0.5)

    again = open_study(cfg, "v1")

    assert again.study_name == first.study_name == study_name(cfg, "v1")
    assert [t.value for t in again.trials] == [0.5] and again.user_attrs["data_version"] == "v1"
    assert again.user_attrs["metric"] == "roc_auc" and again.metric_names == ["roc_auc"]
    assert [s.study_name for s in build_storage(storage_url).get_all_studies()] == [first.study_name]
    other = open_study(cfg, "v2")  # new data: a study of its own
    assert other.study_name != first.study_name and other.trials == []


def test_a_worker_joins_only_a_study_that_a_tune_run_created(storage_url):
    cfg = _cfg(storage_url)
    with pytest.raises(TunedagError, match=rf"Study {study_name(cfg, 'v1')} does not exist .*\(tune.storage\)"):
        join_study(cfg, "v1")
    assert build_storage(storage_url).get_all_studies() == [], "a refused worker creates nothing"

    created = open_study(cfg, "v1")
    created.tell(created.ask(X), 1.0)
    joined = join_study(cfg, "v1")
    assert joined.study_name == created.study_name and len(joined.trials) == 1


# ---------------------------------------------------------------- ownership of RUNNING trials


def test_a_claimed_trial_is_alive_while_its_owner_runs_and_dead_after(storage_url, dead_owner, live_owner):
    study = open_study(_cfg(storage_url), "v1")
    mine, theirs, gone = study.ask(X), study.ask(X), study.ask(X)
    claim(mine)
    theirs.set_user_attr(WORKER_ATTR, live_owner)
    gone.set_user_attr(WORKER_ATTR, dead_owner)

    frozen = {t.number: t for t in optuna.load_study(study_name=study.study_name, storage=build_storage(storage_url)).trials}

    assert frozen[mine.number].user_attrs[WORKER_ATTR] == worker_id()
    assert owner_alive(frozen[mine.number]) and owner_alive(frozen[theirs.number])
    assert not owner_alive(frozen[gone.number])


def test_another_hosts_trial_lives_by_its_heartbeat_and_an_unclaimed_one_by_its_start(storage_url):
    study = open_study(_cfg(storage_url), "v1")
    beating, silent, unclaimed = study.ask(X), study.ask(X), study.ask(X)
    beating.set_user_attr(WORKER_ATTR, "elsewhere:123:456")
    beating.set_user_attr(HEARTBEAT_ATTR, time.time())
    silent.set_user_attr(WORKER_ATTR, "elsewhere:123:456")

    frozen = {t.number: t for t in study.get_trials()}
    start = frozen[silent.number].datetime_start.timestamp()

    assert owner_alive(frozen[beating.number]) and not owner_alive(frozen[beating.number], now=time.time() + STALE_S + 1)
    assert owner_alive(frozen[silent.number]) and not owner_alive(frozen[silent.number], now=start + STALE_S + 1)
    assert owner_alive(frozen[unclaimed.number]) and not owner_alive(frozen[unclaimed.number], now=start + 11)


def test_beat_refreshes_running_trials_and_leaves_finished_ones_untouched(storage_url):
    study = open_study(_cfg(storage_url), "v1")
    running, done = study.ask(X), study.ask(X)
    claim(running)
    study.tell(done, 1.0)

    beat(study, [trial_id(running), trial_id(done)])  # the storage refuses the finished one; beat goes on
    before = study.get_trials()[running.number].user_attrs[HEARTBEAT_ATTR]
    time.sleep(0.01)
    beat(study, [trial_id(running), trial_id(done)])

    trials = optuna.load_study(study_name=study.study_name, storage=build_storage(storage_url)).get_trials()
    assert trials[running.number].user_attrs[HEARTBEAT_ATTR] > before
    assert HEARTBEAT_ATTR not in trials[done.number].user_attrs


# ---------------------------------------------------------------- continue_sequence


def test_each_driver_is_seeded_from_what_the_storage_holds(storage_url, monkeypatch, dead_owner, live_owner):
    cfg = _cfg(storage_url)
    seeds: list[int | None] = []
    real = storage.build_sampler
    monkeypatch.setattr(storage, "build_sampler", lambda c, seed=None: (seeds.append(seed), real(c, seed=seed))[1])
    me = worker_id()

    study = open_study(cfg, "v1")  # the first driver of an empty study: raw Optuna's sequence
    open_study(cfg, "v1")  # the study existed, still empty: another driver may be asking beside it
    for _ in range(3):
        study.tell(study.ask(X), 0.5)
    open_study(cfg, "v1")  # extended or resumed: seeded from the trial count
    join_study(cfg, "v1")  # a worker: always beside others
    live = study.ask(X)
    live.set_user_attr(WORKER_ATTR, live_owner)
    open_study(cfg, "v1")  # another live process runs a trial of it
    study.tell(live, 0.5)
    study.ask(X).set_user_attr(WORKER_ATTR, dead_owner)
    open_study(cfg, "v1")  # a dead process's trial is no driver beside this one

    assert [s for s in seeds if s is not None] == [
        cfg.seed,
        continuation_seed(cfg.seed, 0, me),
        continuation_seed(cfg.seed, 3),
        continuation_seed(cfg.seed, 3, me),
        continuation_seed(cfg.seed, 4, me),
        continuation_seed(cfg.seed, 5),
    ]


# ---------------------------------------------------------------- orphans


def test_recover_orphans_fails_the_dead_requeues_whole_ones_and_leaves_the_live(storage_url, dead_owner):
    cfg = _cfg(storage_url)
    study = open_study(cfg, "v1")
    live, whole, partial = study.ask(), study.ask(), study.ask()
    claim(live)
    params = suggest(whole, cfg.families)
    partial.suggest_int("max_depth", 2, 16)  # killed while its parameters were being sampled
    for trial in (whole, partial):
        trial.set_user_attr(WORKER_ATTR, dead_owner)

    orphans = recover_orphans(open_study(cfg, "v1"), cfg.families)  # the next run, on a study object of its own

    assert sorted(t.number for t in orphans) == [whole.number, partial.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {
        live.number: TrialState.RUNNING,
        whole.number: TrialState.FAIL,
        partial.number: TrialState.FAIL,
        3: TrialState.WAITING,
    }
    rerun = study.ask()
    assert rerun.number == 3 and suggest(rerun, cfg.families) == params and rerun.user_attrs["requeued_from"] == whole.number


def test_two_drivers_recovering_the_same_orphan_requeue_it_once(storage_url, dead_owner):
    cfg = _cfg(storage_url)
    study = open_study(cfg, "v1")
    orphan = study.ask()
    suggest(orphan, cfg.families)
    orphan.set_user_attr(WORKER_ATTR, dead_owner)
    late = open_study(cfg, "v1")
    stale = late.get_trials(deepcopy=False, states=(TrialState.RUNNING,))  # what the slower driver saw before the other told

    assert [t.number for t in recover_orphans(study, cfg.families)] == [orphan.number]
    late.get_trials = lambda deepcopy=True, states=None: stale  # the race: it still sees the orphan RUNNING
    recover_orphans(late, cfg.families)  # the storage refuses its tell; it re-queues nothing

    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]


# ---------------------------------------------------------------- concurrency across processes


def _drive(url: str, name: str, n_trials: int, start: multiprocessing.Barrier) -> tuple[str, list[int]]:
    """One driver process: ask, leave surplus trials, claim, tell, as the tune loop does, until the budget is full."""
    study = optuna.load_study(study_name=name, storage=build_storage(url), sampler=optuna.samplers.RandomSampler())
    start.wait(60)
    told = []
    while True:
        trial = study.ask(X)
        if is_surplus(tally(study).started, n_trials, trial.number):
            study.tell(trial, state=TrialState.FAIL)
            break
        claim(trial)
        time.sleep(0.02)  # a trial's work: the drivers interleave
        study.tell(trial, trial.params["x"])
        told.append(trial.number)
    return worker_id(), told


def _child(target, args: tuple, start: multiprocessing.Barrier, out: multiprocessing.Queue) -> None:
    """Run `target` in a forked child and send back its result, or why it failed.

    The child leaves with os._exit once the result is sent: what the parent process set up before the
    fork (Prefect's and MLflow's handlers, when end-to-end tests ran in it first) is not the child's to clean up.
    """
    try:
        result = ("ok", target(*args, start))
    except BaseException as exc:
        result = ("error", f"{type(exc).__name__}: {exc}")
    out.put(result)
    out.close()
    out.join_thread()
    os._exit(0)


def _in_processes(target, *args, n: int = 3) -> list:
    ctx = multiprocessing.get_context("fork")  # the test's imports are already done: each driver starts at once
    start, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(target, args, start, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert [r for r in results if r[0] != "ok"] == [] and [p.exitcode for p in procs] == [0] * n
    return [value for _, value in results]


def test_drivers_in_three_processes_fill_one_budget_exactly(storage_url):
    study = open_study(_cfg(storage_url), "v1")

    results = _in_processes(_drive, storage_url, study.study_name, 12)

    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 12 and len(trials) - len(complete) <= 3  # each driver asks at most one surplus trial
    assert sorted(n for _, told in results for n in told) == sorted(t.number for t in complete)
    assert {t.user_attrs[WORKER_ATTR] for t in complete} == {owner for owner, told in results if told}
    assert len({owner for owner, told in results if told}) >= 2, "the drivers interleaved"
    assert tally(study).finished == 12 and tally(study).budget_left(12) == 0


def _take_queued(url: str, name: str, n: int, start: multiprocessing.Barrier) -> list[float]:
    study = optuna.load_study(study_name=name, storage=build_storage(url))
    start.wait(60)
    taken = []
    for _ in range(n):
        trial = study.ask()
        taken.append(trial.suggest_float("x", 0.0, 1.0))
        time.sleep(0.01)
        study.tell(trial, 1.0)
    return taken


def test_a_queued_trial_is_taken_by_exactly_one_of_several_processes(storage_url):
    study = open_study(_cfg(storage_url), "v1")
    queued = [round(0.1 * i, 1) for i in range(1, 7)]
    for x in queued:
        study.enqueue_trial({"x": x}, user_attrs={"requeued_from": 99}, skip_if_exists=False)

    taken = _in_processes(_take_queued, storage_url, study.study_name, 2)

    assert sorted(x for xs in taken for x in xs) == queued
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 6
