"""Every runner keeps the contract of runners.base.Runner: results, errors, timeouts, close."""

from __future__ import annotations

import time

import pytest

from runners import Limits, TrialLimitExceeded, make_runner
from tests.support import jobs

LIMITS = Limits(threads=1, timeout_s=3.0)


@pytest.fixture(scope="module", params=["thread", "process", "dask"])
def runner(request):
    made = make_runner(request.param, 2, LIMITS, preload=("tests.support.jobs",))
    yield made
    made.close()


def test_the_result_comes_back(runner):
    assert runner.submit(jobs.pid_and_double, 21).result(timeout=60)[1] == 42


def test_an_exception_comes_back_as_itself(runner):
    with pytest.raises(ValueError, match="bad input"):
        runner.submit(jobs.raise_value_error).result(timeout=60)


def test_jobs_run_side_by_side(runner):
    started = time.monotonic()
    futures = [runner.submit(jobs.sleep, 2.0) for _ in range(2)]
    assert [f.result(timeout=60) for f in futures] == [2.0, 2.0]
    assert time.monotonic() - started < 3.5


def test_a_timeout_is_trial_limit_exceeded_on_time_and_the_runner_goes_on(runner):
    started = time.monotonic()
    with pytest.raises(TrialLimitExceeded, match="trial_timeout"):
        runner.submit(jobs.sleep, 30).result(timeout=60)
    assert time.monotonic() - started < 15
    assert runner.submit(jobs.pid_and_double, 2).result(timeout=60)[1] == 4


@pytest.mark.parametrize("kind", ["thread", "process", "dask"])
def test_close_is_idempotent_and_cancel_stops_running_jobs(kind):
    made = make_runner(kind, 1, Limits(threads=1), preload=("tests.support.jobs",))
    running = made.submit(jobs.sleep, 30)
    time.sleep(0.5)
    started = time.monotonic()
    made.close(cancel=True)
    made.close()
    with pytest.raises(TrialLimitExceeded, match="interrupted"):
        running.result(timeout=10)
    assert time.monotonic() - started < 10
    with pytest.raises(RuntimeError):
        made.submit(jobs.pid_and_double, 1)
