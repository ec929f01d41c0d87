"""The trial executors: worker processes with enforced limits, and the in-thread executor."""

from __future__ import annotations

import os

import pytest

from tests.support import jobs
from tunedag.executor import Limits, ProcessExecutor, ThreadExecutor, TrialLimitExceeded, default_threads


@pytest.fixture(scope="module")
def pool():
    executor = ProcessExecutor(2, Limits(threads=1, timeout_s=3.0, memory_mb=300), preload=("tests.support.jobs",))
    yield executor
    executor.close()


def test_runs_in_another_process(pool):
    pid, value = pool.run(jobs.pid_and_double, 21)
    assert value == 42 and pid != os.getpid()


def test_timeout_kills_the_worker_and_the_pool_goes_on(pool):
    with pytest.raises(TrialLimitExceeded, match="trial_timeout"):
        pool.run(jobs.sleep, 30)
    assert pool.run(jobs.pid_and_double, 1)[1] == 2


def test_a_crashing_worker_is_reported_and_replaced(pool):
    with pytest.raises(TrialLimitExceeded, match="exit code 7"):
        pool.run(jobs.crash)
    assert pool.run(jobs.pid_and_double, 2)[1] == 4


def test_memory_limit_raises_memory_error_inside_the_trial(pool):
    with pytest.raises(MemoryError):
        pool.run(jobs.allocate, 1024)
    assert pool.run(jobs.allocate, 16) == 16 * 1024 * 1024 // 8


def test_exceptions_come_back_as_themselves(pool):
    with pytest.raises(ValueError, match="bad input"):
        pool.run(jobs.raise_value_error)


def test_workers_cap_blas_threads(pool):
    assert set(pool.run(jobs.blas_threads)) <= {1}


def test_thread_executor_runs_in_the_calling_thread():
    assert ThreadExecutor(Limits(threads=default_threads(1))).run(jobs.pid_and_double, 3) == (os.getpid(), 6)


def test_default_threads_share_the_cores():
    cores = os.cpu_count() or 1
    assert default_threads(1) == cores
    assert default_threads(cores * 2) == 1
    assert default_threads(2, requested=3) == 3
