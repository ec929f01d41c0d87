"""What the Dask runner adds to the contract: limits enforced inside the worker, shipped files, one GPU per worker."""

from __future__ import annotations

import os
import time

import pytest

from runners import Limits, TrialLimitExceeded
from runners import dask as dask_runner
from runners.dask import DaskRunner
from tests.runners import more_jobs
from tests.support import jobs

PRELOAD = ("tests.support.jobs", "tests.runners.more_jobs")


@pytest.fixture(scope="module")
def cluster():
    runner = DaskRunner(2, Limits(threads=1, timeout_s=20.0, memory_mb=300), preload=PRELOAD)
    yield runner
    runner.close()


def test_a_crash_fails_the_job_with_the_local_reason_and_the_worker_goes_on(cluster):
    with pytest.raises(TrialLimitExceeded, match=r"worker process died \(exit code 7\)"):
        cluster.submit(jobs.crash).result(timeout=60)
    assert [cluster.submit(jobs.pid_and_double, 2).result(timeout=60)[1] for _ in range(3)] == [4, 4, 4]


def test_the_memory_limit_is_a_memory_error_inside_the_job(cluster):
    with pytest.raises(MemoryError):
        cluster.submit(jobs.allocate, 2000).result(timeout=60)
    assert cluster.submit(jobs.allocate, 10).result(timeout=60) > 0


def test_jobs_run_in_a_process_of_the_dask_worker_with_capped_threads(cluster):
    dask_workers = set(cluster._client.run(os.getpid).values())
    assert len(dask_workers) == 2 and cluster.submit(jobs.pid_and_double, 1).result(timeout=60)[0] not in dask_workers
    assert set(cluster.submit(jobs.blas_threads).result(timeout=60)) == {1}


def test_a_trial_process_never_imports_dask_and_the_workers_timers_are_slowed(cluster):
    # Importing distributed took half a second of each new trial process's first trial (after a timeout or crash too).
    assert cluster.submit(more_jobs.imported, "distributed").result(timeout=60) is False
    assert cluster.submit(more_jobs.imported, "runners.base").result(timeout=60) is True
    import dask

    intervals = cluster._client.run(lambda: [dask.config.get(k) for k in dask_runner.QUIET])
    assert len(intervals) == 2 and all(got == list(dask_runner.QUIET.values()) for got in intervals.values())


def test_a_shipped_file_is_read_from_the_workers_own_copy(cluster, tmp_path):
    shipped = tmp_path / "prepared.parquet"
    shipped.write_bytes(b"a table" * 1000)
    cluster.ship(shipped)
    shipped.unlink()  # gone from the driver's disk: only the workers' copies are left
    answers = [cluster.submit(more_jobs.read_shipped, str(shipped)) for _ in range(2)]
    for local, data in (f.result(timeout=60) for f in answers):
        assert data == b"a table" * 1000 and local != str(shipped)

    def copies_held(dask_worker) -> int:  # in the Dask worker's memory: its data store and its plugins
        values = [*dask_worker.data.values(), *(getattr(p, "data", None) for p in dask_worker.plugins.values())]
        return sum(isinstance(v, bytes) and v == b"a table" * 1000 for v in values)

    held = cluster._client.run(copies_held)
    assert len(held) == 2 and set(held.values()) == {0}, held  # each worker keeps its copy on disk only


def test_each_local_worker_gets_its_own_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    runner = DaskRunner(2, Limits(threads=1), preload=PRELOAD)
    try:
        for _ in range(2):
            seen = [f.result(timeout=60) for f in [runner.submit(jobs.visible_devices_after, 1.5) for _ in range(2)]]
            assert sorted(seen) == ["3", "5"]
    finally:
        runner.close()


def test_a_queued_job_is_timed_from_its_start_on_a_worker_not_from_its_submit(monkeypatch):
    monkeypatch.setattr(dask_runner, "GRACE_S", 0.5)  # the driver's backstop: 2.5 s after a job starts
    runner = DaskRunner(1, Limits(threads=1, timeout_s=2.0), preload=PRELOAD)
    armed, arm = [], runner._arm
    monkeypatch.setattr(runner, "_arm", lambda done, seconds: (armed.append(time.monotonic()), arm(done, seconds)))
    try:
        submitted = time.monotonic()
        queued = [runner.submit(jobs.sleep, 1.2) for _ in range(3)]  # one worker: the third starts ~2.4 s after its submit
        assert [f.result(timeout=60) for f in queued] == [1.2, 1.2, 1.2]
        assert len(armed) == 3 and armed[2] - submitted > 2.4, "each backstop starts when its job starts"
        with pytest.raises(TrialLimitExceeded, match="trial_timeout"):  # a job that overruns still ends on time
            runner.submit(jobs.sleep, 30).result(timeout=20)
    finally:
        runner.close(cancel=True)
