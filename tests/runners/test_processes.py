"""What only the worker-process runner enforces: memory cap, a dead worker, thread caps, GPU slots, ignored SIGINT."""

from __future__ import annotations

import os
import signal

import pytest

from hosts import resources
from hosts.resources import default_threads
from runners import Limits, TrialLimitExceeded
from runners.processes import ProcessRunner
from tests.runners import more_jobs
from tests.support import jobs


@pytest.fixture(scope="module")
def pool():
    runner = ProcessRunner(2, Limits(threads=1, timeout_s=10.0, memory_mb=300), preload=("tests.support.jobs",))
    yield runner
    runner.close()


def test_runs_in_another_process(pool):
    pid, value = pool.submit(jobs.pid_and_double, 21).result()
    assert value == 42 and pid != os.getpid()


def test_a_crashing_worker_is_reported_and_replaced(pool):
    with pytest.raises(TrialLimitExceeded, match="worker process died \\(exit code 7\\)"):
        pool.submit(jobs.crash).result()
    assert pool.submit(jobs.pid_and_double, 2).result()[1] == 4


def test_memory_limit_raises_memory_error_inside_the_job(pool):
    with pytest.raises(MemoryError):
        pool.submit(jobs.allocate, 2000).result()
    assert pool.submit(jobs.allocate, 10).result() > 0


def test_workers_cap_blas_threads(pool):
    assert set(pool.submit(jobs.blas_threads).result()) == {1}


def test_workers_ignore_sigint(pool):
    pid = pool.submit(jobs.pid_and_double, 0).result()[0]
    os.kill(pid, signal.SIGINT)
    assert pool.submit(jobs.sleep, 0.2).result() == 0.2
    os.kill(pid, 0)  # still alive: SIGINT was ignored


def test_default_threads_share_the_cores():
    cores = os.cpu_count() or 1
    assert default_threads(1) == cores
    assert default_threads(cores * 2) == 1
    assert default_threads(2, requested=3) == 3


@pytest.mark.parametrize("listed, expected", [("0,1", ["0", "1"]), ("GPU-a, GPU-b", ["GPU-a", "GPU-b"]), ("", [])])
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, listed, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert resources.visible_gpus() == expected


def test_without_nvidias_library_there_is_no_gpu_and_no_error(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(resources.ctypes, "CDLL", missing)
    assert resources.visible_gpus() == []


def test_a_gpu_is_never_shared_even_after_a_worker_is_replaced(monkeypatch):
    """Worker slots round-robin over the GPUs gave the replacement of GPU 5's worker GPU 3, which the other worker held."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    runner = ProcessRunner(2, Limits(threads=1), preload=("tests.support.jobs", "tests.runners.more_jobs"))
    try:
        first = [runner.submit(more_jobs.device_unless, "5", 1.0) for _ in range(2)]
        assert first[0].exception(timeout=60) or first[1].exception(timeout=60)  # GPU 5's worker died
        for _ in range(2):  # the two workers, each held by a trial for a second
            seen = [f.result(timeout=60) for f in [runner.submit(jobs.visible_devices_after, 1.0) for _ in range(2)]]
            assert sorted(seen) == ["3", "5"]
    finally:
        runner.close()


def test_workers_beyond_the_gpus_get_none(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    runner = ProcessRunner(2, Limits(threads=1), preload=("tests.support.jobs",))
    try:
        seen = [f.result(timeout=60) for f in [runner.submit(jobs.visible_devices_after, 1.0) for _ in range(2)]]
    finally:
        runner.close()
    assert sorted(seen) == ["", "7"]
