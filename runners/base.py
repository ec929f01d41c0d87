"""The runner contract: where a trial's job runs, behind one small interface (as Optuna's `BaseSampler`)."""

from __future__ import annotations

import abc
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SHIPPED: dict[str, str] = {}  # in a worker: the driver's path of each file a runner shipped -> this worker's copy


class TrialLimitExceeded(Exception):
    """The job ran past its timeout, its worker died, or the runner was closed under it; the message says which."""


@dataclass(frozen=True)
class Limits:
    """What each job may use; `None` means no limit."""

    threads: int
    timeout_s: float | None = None
    memory_mb: int | None = None


def local_path(path: Path | str) -> Path:
    """Where a job reads the driver's file `path`: the worker's own copy when the runner shipped it (`Runner.ship`), else `path`."""
    return Path(_SHIPPED.get(str(path), path))


def run_shipped(files: dict[str, str], job: bytes) -> bytes:
    """In a worker's trial process: note its copies of the shipped `files` (for `local_path`), run the pickled `(fn, args)`
    and return its result pickled. Here, not in runners.dask, so that a trial process never imports Dask (half a second)."""
    _SHIPPED.update(files)
    fn, args = pickle.loads(job)
    return pickle.dumps(fn(*args))


def answer(done: Future, value: Any, error: BaseException | None) -> None:
    """Answer `done` once: the first of the job, its timer or a cancelling close wins."""
    try:
        done.set_exception(error) if error is not None else done.set_result(value)
    except Exception:  # InvalidStateError: answered already
        pass


class Runner(abc.ABC):
    """Runs jobs (a module-level function and picklable arguments); tests/runners/test_contract.py holds each to this contract:

    - `submit(fn, *args)` returns at once a `Future` of `fn(*args)`; an exception `fn` raises comes back as itself.
    - A job past `limits.timeout_s`, or whose worker dies, ends with `TrialLimitExceeded` saying why; the runner goes on.
      A runner that cannot stop a job (threads) leaves it running unseen but still answers on time.
    - `close(cancel=False)` waits for running jobs; `close(cancel=True)` stops them within seconds ("interrupted").
      Closing twice is a no-op; `submit` after `close` raises RuntimeError. Both may be called from any thread.
    - `ship(path)` makes the driver's file readable by later jobs as `local_path(path)`, on whatever host they run.
    """

    def __init__(self, limits: Limits):
        self.limits, self._lock, self._closed, self._jobs = limits, threading.Lock(), False, {}

    def _track(self, start: Callable[[], Any], timer_s: float | None = None) -> tuple[Future, Any]:
        """A future for the job `start()` launches (refused once closed), tracked until answered, answered at `timer_s`."""
        done: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("submit on a closed runner")
            job = self._jobs[done] = start()
        done.add_done_callback(lambda _: self._jobs.pop(done, None))
        if timer_s:
            self._arm(done, timer_s)
        return done, job

    def _arm(self, done: Future, seconds: float) -> None:
        """Answer `done` with the timeout error in `seconds` unless it is answered first."""
        timer = threading.Timer(seconds, answer, (done, None, self._timed_out()))
        timer.daemon = True
        timer.start()
        done.add_done_callback(lambda _: timer.cancel())

    def _closing(self) -> list[tuple[Future, Any]] | None:
        """The jobs still running, on the first close only (None after)."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            return list(self._jobs.items())

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        raise NotImplementedError

    @abc.abstractmethod
    def close(self, cancel: bool = False) -> None:
        raise NotImplementedError

    def ship(self, path: Path | str) -> None:
        """Send the file at `path` to the workers, once; runners whose workers share this machine's disk need not."""
        return None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)

    def _timed_out(self) -> TrialLimitExceeded:
        return TrialLimitExceeded(f"ran past tune.trial_timeout ({self.limits.timeout_s:g} s); its worker was stopped")
