"""Jobs on a Dask cluster: the one at `address`, or a LocalCluster of `workers` processes on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from runners.base import Limits, Runner, TrialLimitExceeded


class DaskRunner(Runner):
    """`distributed.Client.submit`; the timeout cancels the job, a worker lost for good is `TrialLimitExceeded`."""

    def __init__(self, workers: int, limits: Limits, address: str | None = None):
        from distributed import Client, LocalCluster

        super().__init__(limits)
        self._cluster = (
            None
            if address
            else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1")
        )
        self._client = Client(address or self._cluster)
        self._lock, self._closed, self._jobs = threading.Lock(), False, {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        done: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("submit on a closed runner")
            job = self._client.submit(_capped, self.limits.threads, fn, *args, pure=False)
            self._jobs[done] = job
        job.add_done_callback(lambda finished: self._settle(done, finished, None))
        if self.limits.timeout_s:
            timer = threading.Timer(self.limits.timeout_s, self._settle, (done, job, self._timed_out()))
            timer.daemon = True
            timer.start()
            done.add_done_callback(lambda _: timer.cancel())
        return done

    def _settle(self, done: Future, job: Any, error: BaseException | None) -> None:
        from distributed.scheduler import KilledWorker

        with self._lock:
            self._jobs.pop(done, None)
        if done.done():
            return
        if error is not None:
            _answer(done, None, error)
            return self._stop(job)
        try:
            _answer(done, job.result(), None)
        except KilledWorker as exc:
            _answer(done, None, TrialLimitExceeded(f"its worker process died ({exc})"))
        except Exception as exc:  # the job's own error, or a cancelled job
            _answer(done, None, TrialLimitExceeded("interrupted") if job.cancelled() else exc)

    def _stop(self, job: Any) -> None:
        """Cancel the job and restart the worker running it (Dask cannot stop a running task otherwise)."""
        busy = [worker for worker, keys in self._client.processing().items() if job.key in keys]
        job.cancel()
        try:
            if busy:
                self._client.restart_workers(busy)
        except Exception:  # a worker without a nanny cannot be restarted: the job runs on, unseen
            pass

    def close(self, cancel: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed, jobs = True, list(self._jobs.items())
        for done, job in jobs:
            if cancel:
                job.cancel()
                _answer(done, None, TrialLimitExceeded("interrupted"))
            else:
                done.exception()
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _capped(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn` on a Dask worker with the trial's BLAS / torch thread cap."""
    from runners.processes import cap_threads

    cap_threads(threads)
    return fn(*args)


def _answer(done: Future, value: Any, error: BaseException | None) -> None:
    try:
        done.set_exception(error) if error is not None else done.set_result(value)
    except Exception:  # InvalidStateError: answered already
        pass
