"""Several workers on one study: ownership, liveness, orphan recovery and the global budget."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from compat.optuna import trial_id
from studies.storage import (
    HEARTBEAT_ATTR,
    STALE_S,
    WORKER_ATTR,
    beat,
    budget_left,
    build_storage,
    claim,
    owner_alive,
    recover_orphans,
    worker_id,
)

FAMILIES = {"": None}


@pytest.fixture
def study(tmp_path):
    return optuna.create_study(storage=build_storage(str(tmp_path / "s.journal")), study_name="s")


def _dead_pid_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    import socket

    import psutil

    return f"{socket.gethostname()}:{proc.pid}:{psutil.Process().create_time():.0f}"


def test_own_trials_are_alive_and_a_dead_pid_is_not(study):
    mine, theirs = study.ask(), study.ask()
    claim(mine)
    theirs.set_user_attr(WORKER_ATTR, _dead_pid_owner())
    frozen = {t.number: t for t in study.get_trials()}
    assert owner_alive(frozen[mine.number])
    assert not owner_alive(frozen[theirs.number])


def test_another_host_is_alive_while_its_heartbeat_is_fresh(study):
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, "elsewhere:123:456")
    trial.set_user_attr(HEARTBEAT_ATTR, time.time())
    frozen = study.get_trials()[0]
    assert owner_alive(frozen)
    assert not owner_alive(frozen, now=time.time() + STALE_S + 1)


def test_beat_refreshes_running_trials_and_ignores_finished_ones(study):
    running, done = study.ask(), study.ask()
    claim(running)
    study.tell(done, 1.0)
    beat(study, [trial_id(running), trial_id(done)])
    before = study.get_trials()[0].user_attrs[HEARTBEAT_ATTR]
    time.sleep(0.01)
    beat(study, [trial_id(running), trial_id(done)])
    assert study.get_trials()[0].user_attrs[HEARTBEAT_ATTR] > before
    assert HEARTBEAT_ATTR not in study.get_trials()[1].user_attrs


def test_another_hosts_trial_counts_from_its_start_until_its_first_heartbeat(study):
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, "elsewhere:123:456")  # claimed on another host, no heartbeat yet
    frozen = study.get_trials()[0]
    assert owner_alive(frozen)
    assert not owner_alive(frozen, now=frozen.datetime_start.timestamp() + STALE_S + 1)


def test_recover_orphans_leaves_live_workers_alone(study, monkeypatch):
    monkeypatch.setattr("studies.storage.is_complete", lambda params, families: True)
    live, dead = (
        study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}),
        study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}),
    )
    claim(live)
    dead.set_user_attr(WORKER_ATTR, _dead_pid_owner())
    orphans = recover_orphans(study, FAMILIES)
    assert [t.number for t in orphans] == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[live.number] == TrialState.RUNNING and states[dead.number] == TrialState.FAIL
    assert study.get_trials(states=(TrialState.WAITING,))[0].system_attrs["fixed_params"] == {"x": dead.params["x"]}


def test_budget_counts_every_workers_running_trials_and_orders_races_by_number(study):
    for _ in range(2):
        study.tell(study.ask(), 1.0)
    a, b = study.ask(), study.ask()  # two workers asked at once with one slot left
    assert budget_left(study, 3) == -1
    assert budget_left(study, 3, a.number) == 0  # the lower number fits
    assert budget_left(study, 3, b.number) == -1  # the other is surplus


def test_worker_id_names_this_process():
    import os

    assert worker_id().split(":")[1] == str(os.getpid())


def test_a_forked_child_has_its_own_worker_id_though_the_parent_cached_its_own():
    import multiprocessing
    import os

    parent = worker_id()
    with multiprocessing.get_context("fork").Pool(1) as pool:  # forked after the parent's id was cached
        child = pool.apply(worker_id)
    assert child != parent and child.split(":")[1] != str(os.getpid())
    assert child.rsplit(":", 2)[0] == parent.rsplit(":", 2)[0]  # same host


def test_a_worker_never_creates_a_study(tmp_path):
    from studies.storage import join_study, open_study
    from tunedag.config import load_config
    from tunedag.errors import TunedagError

    cfg = load_config("params.yaml", {"tune.storage": str(tmp_path / "s.journal")})
    with pytest.raises(TunedagError, match="does not exist .*start it with `tunedag tune`"):
        join_study(cfg, "v1")
    created = open_study(cfg, "v1")
    assert join_study(cfg, "v1").study_name == created.study_name


def test_an_unreachable_database_storage_is_one_paragraph_without_the_password():
    from tunedag.errors import TunedagError

    with pytest.raises(TunedagError, match=r"u:\*\*\*@127.0.0.1:1/db \(tune.storage\) cannot be opened") as err:
        build_storage("postgresql://u:secret@127.0.0.1:1/db")
    assert "secret" not in str(err.value)
