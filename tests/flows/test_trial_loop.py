"""The trial loop tells a trial on its worker's answer and launches the next one before the trial's task run ends."""

from __future__ import annotations

import time

import pytest

import flows.tune
from flows.prepare import prepare_flow
from flows.tune import tune_flow
from tasks.tuning import LaunchedTrial
from tests.flows.ledger import check_ledger

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_the_next_trial_starts_before_the_told_trials_task_run_records_it(make_config, monkeypatch):
    events: list[tuple[str, int]] = []
    real_launch, real_wait = flows.tune.launch_trial, LaunchedTrial.wait_released

    def launch(ctx, job, held=False):
        events.append(("launched", job.number))
        return real_launch(ctx, job, held)

    def late_task(self):  # the trial's task run gets to its recording one second after its release
        real_wait(self)
        time.sleep(1.0)
        events.append(("recorded", self.job.number))

    monkeypatch.setattr(flows.tune, "launch_trial", launch)
    monkeypatch.setattr(LaunchedTrial, "wait_released", late_task)
    cfg = make_config(**{"tune.n_trials": 3, "tune.parallelism": 1})
    prepare_flow(cfg)
    tune_flow(cfg)

    assert events.index(("launched", 1)) < events.index(("recorded", 0))
    assert events.index(("launched", 2)) < events.index(("recorded", 1))
    assert sorted(e for e in events if e[0] == "recorded") == [("recorded", n) for n in range(3)]
    check_ledger(cfg, n_complete=3)  # the flow waited for every task run: each trial's MLflow run is finished
