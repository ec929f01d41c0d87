"""Jobs in a pebble pool of worker processes: enforced timeout and memory cap, capped threads, one GPU per worker.

Workers fork from a forkserver that imported the trial code (`preload`); a timeout or a crash kills only that worker.
Workers ignore SIGINT: on Ctrl-C the parent decides, and `close(cancel=True)` stops them.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import importlib
import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from hosts.resources import cap_memory, cap_threads, claim_gpu, visible_gpus
from runners.base import Limits, Runner, TrialLimitExceeded, answer

# multiprocessing runs the command's main module again in each worker; runpy warns when it was imported there already.
warnings.filterwarnings("ignore", r"'[\w.]+' found in sys\.modules after import of package", RuntimeWarning, "runpy")


class ProcessRunner(Runner):
    """`workers` processes, started (through their initializer) before the constructor returns."""

    def __init__(self, workers: int, limits: Limits, preload: tuple[str, ...] = ()):
        import pebble

        super().__init__(limits)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, *preload])
        started, gpus = context.Value("i", 0), visible_gpus()
        owners = context.Array("i", len(gpus))  # the pid holding each GPU, 0 for none
        self._pool = pebble.ProcessPool(
            max_workers=workers, context=context, initializer=_init_worker, initargs=(limits, gpus, owners, started, preload)
        )
        # Started now, so their imports never count against a trial's timeout; a pool closed while a
        # worker is still starting removes semaphores under it (a traceback).
        self._pool.schedule(os.getpid).result()
        while started.value < workers:
            time.sleep(0.005)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        done, job = self._track(lambda: self._pool.schedule(fn, args=args, timeout=self.limits.timeout_s))
        job.add_done_callback(lambda finished: self._settle(done, finished))
        return done

    def _settle(self, done: Future, job: Future) -> None:
        import pebble

        try:
            return answer(done, job.result(), None)
        except concurrent.futures.TimeoutError:
            error: BaseException = self._timed_out()
        except pebble.ProcessExpired as exc:
            error = TrialLimitExceeded(
                f"its worker process died (exit code {exc.exitcode}), e.g. killed for memory or a native crash"
            )
        except concurrent.futures.process.BrokenProcessPool as exc:  # every worker died at once (a signal to the group)
            error = TrialLimitExceeded(f"its worker process died ({exc})")
        except concurrent.futures.CancelledError:
            error = TrialLimitExceeded("interrupted")
        except BaseException as exc:
            error = exc
        answer(done, None, error)

    def close(self, cancel: bool = False) -> None:
        jobs = self._closing()
        if jobs is None:
            return
        if cancel:
            for done, job in jobs:
                job.cancel()  # pebble stops a running job's worker
                answer(done, None, TrialLimitExceeded("interrupted"))
            self._pool.stop()
        else:
            self._pool.close()
        self._pool.join(timeout=30)


def _init_worker(limits: Limits, gpus: list[str], owners: Any, counter: Any, preload: tuple[str, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the jobs
    for module in preload:  # a forkserver started by another pool may lack ours: import them before the memory cap
        importlib.import_module(module)
    if gpus:  # set before anything starts CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = claim_gpu(gpus, owners)
    with counter.get_lock():
        counter.value += 1
    cap_threads(limits.threads)
    if limits.memory_mb:
        cap_memory(limits.memory_mb)
