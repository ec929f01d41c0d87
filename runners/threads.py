"""Jobs in threads of this process: no isolation, the timeout answered on time but the job left to finish."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from hosts.resources import cap_threads
from runners.base import Limits, Runner, TrialLimitExceeded, answer


class ThreadRunner(Runner):
    """Each job in a daemon thread of its own (never blocking the process's exit); BLAS threads capped for the process."""

    def __init__(self, limits: Limits):
        super().__init__(limits)
        cap_threads(limits.threads)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        done, _ = self._track(lambda: None, self.limits.timeout_s)
        done.set_running_or_notify_cancel()
        threading.Thread(target=self._run, args=(done, fn, args), name="tunedag-trial", daemon=True).start()
        return done

    @staticmethod
    def _run(done: Future, fn: Callable[..., Any], args: tuple) -> None:
        try:
            answer(done, fn(*args), None)
        except BaseException as exc:  # the job's own error, back to the caller
            answer(done, None, exc)

    def close(self, cancel: bool = False) -> None:
        for done, _ in self._closing() or []:
            answer(done, None, TrialLimitExceeded("interrupted")) if cancel else done.exception()
