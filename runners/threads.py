"""Jobs in threads of this process: no isolation, the timeout answered on time but the job left to finish."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from runners.base import Limits, Runner, TrialLimitExceeded, answer


class ThreadRunner(Runner):
    """Each job in a daemon thread of its own (never blocking the process's exit); BLAS threads capped for the process."""

    def __init__(self, limits: Limits):
        super().__init__(limits)
        from runners.processes import cap_threads

        cap_threads(limits.threads)
        self._futures: set[Future] = set()
        self._lock, self._closed = threading.Lock(), False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        done: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("submit on a closed runner")
            self._futures.add(done)
        done.set_running_or_notify_cancel()
        done.add_done_callback(self._futures.discard)
        threading.Thread(target=self._run, args=(done, fn, args), name="tunedag-trial", daemon=True).start()
        if self.limits.timeout_s:
            timer = threading.Timer(self.limits.timeout_s, answer, (done, None, self._timed_out()))
            timer.daemon = True
            timer.start()
            done.add_done_callback(lambda _: timer.cancel())
        return done

    @staticmethod
    def _run(done: Future, fn: Callable[..., Any], args: tuple) -> None:
        try:
            answer(done, fn(*args), None)
        except BaseException as exc:  # the job's own error, back to the caller
            answer(done, None, exc)

    def close(self, cancel: bool = False) -> None:
        with self._lock:
            self._closed, futures = True, list(self._futures)
        for done in futures:
            if cancel:
                answer(done, None, TrialLimitExceeded("interrupted"))
            else:
                done.exception()
