"""Where a trial's objective runs: a pool of worker processes with enforced limits, or the calling thread.

The process pool is pebble's (a maintained multiprocessing pool with per-task timeouts that
kill the worker). Workers start from a forkserver that has already imported the trial code, so a
new or replaced worker costs a fork, not the imports. Each worker caps its BLAS / OpenMP / torch
threads, so `parallelism` trials never oversubscribe the cores, and may cap its address space.

A job started with `start` may hand back its answer early with `report_early` and go on working
(a trial reports its score, then writes its model files): the caller gets two futures, the early
answer and the job's return. With a spare worker in the pool the next job runs meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import importlib
import multiprocessing
import os
import resource
import sys
import threading
import time
import uuid
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from tunedag.errors import TunedagError

# A worker runs the command's module again as `__mp_main__` beside the copy its forkserver preloaded
# (`main_module`), as meant; runpy warns of that second copy. The forkserver imports this module first.
warnings.filterwarnings("ignore", r"'[\w.]+' found in sys\.modules after import of package", RuntimeWarning, "runpy")


class TrialLimitExceeded(Exception):
    """The trial ran past its timeout or died in its worker process; the message says which."""


@dataclass(frozen=True)
class Limits:
    """What each trial may use; `None` means no limit."""

    threads: int
    timeout_s: float | None = None
    memory_mb: int | None = None


def default_threads(parallelism: int, requested: int | None = None) -> int:
    """Threads per trial: as requested, else the cores shared out between the parallel trials."""
    return requested or max(1, (os.cpu_count() or 1) // parallelism)


class ThreadExecutor:
    """Runs the objective in the calling thread (the trial task's own thread)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        _cap_threads(limits.threads)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    def start(self, fn: Callable[..., Any], *args: Any) -> tuple[Future, Future]:
        """Run `fn` now; both futures hold its return (`report_early` is a no-op in this thread)."""
        done: Future = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as exc:
            done.set_exception(exc)
        return done, done

    def close(self) -> None:
        pass


class ProcessExecutor:
    """Runs the objective in one of `workers` processes; a timeout or a crash kills only that worker.

    `spare` more processes let a job that answered early (`report_early`) finish its work while
    the next job runs.
    """

    def __init__(self, workers: int, limits: Limits, preload: tuple[str, ...] = (), spare: int = 0):
        import pebble

        self.limits = limits
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, *preload])  # this module first: the workers run its code
        gpus = visible_gpus()
        self._early, self._waiting, self._lock = context.SimpleQueue(), {}, threading.Lock()
        started = context.Value("i", 0)  # workers through their initializer
        self._pool = pebble.ProcessPool(max_workers=workers + spare, context=context, initializer=_init_worker,
                                        initargs=(limits, gpus, started, self._early, preload))
        threading.Thread(target=self._dispatch, name="tunedag-early-answers", daemon=True).start()
        # Start the workers now (pebble starts them on the first job), so their imports never count
        # against a trial's timeout, and wait until every one has passed its initializer: a pool
        # closed while a worker is still starting removes the semaphores it is opening, and it
        # prints a traceback.
        self._pool.schedule(os.getpid).result()
        while started.value < workers + spare:
            time.sleep(0.005)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return _outcome(self._pool.schedule(fn, args=args, timeout=self.limits.timeout_s), self.limits)

    def start(self, fn: Callable[..., Any], *args: Any) -> tuple[Future, Future]:
        """Start `fn`; return (its early answer, or its return when it gave none; its return).

        Both futures raise `TrialLimitExceeded` for a timeout or a dead worker, the early one only
        if that happened before the early answer came.
        """
        token, early, final = uuid.uuid4().hex, Future(), Future()
        with self._lock:
            self._waiting[token] = early
        job = self._pool.schedule(_with_token, args=(token, fn, args), timeout=self.limits.timeout_s)
        job.add_done_callback(lambda done: self._settle(token, done, final))
        return early, final

    def _settle(self, token: str, done: Future, final: Future) -> None:
        try:
            final.set_result(_outcome(done, self.limits))
        except BaseException as exc:
            final.set_exception(exc)
        with self._lock:
            early = self._waiting.pop(token, None)
        if early is None:
            return
        if final.exception() is None:
            early.set_result(final.result())
        else:
            early.set_exception(final.exception())

    def _dispatch(self) -> None:
        while (message := self._early.get()) is not None:
            token, value = message
            with self._lock:
                early = self._waiting.pop(token, None)
            if early is not None:
                early.set_result(value)

    def close(self) -> None:
        self._pool.close()
        self._pool.join(timeout=30)
        self._pool.stop()
        self._early.put(None)


def _outcome(done: Future, limits: Limits) -> Any:
    """A finished pool job's return, with a timeout or a dead worker as `TrialLimitExceeded`."""
    import pebble

    try:
        return done.result()
    except concurrent.futures.TimeoutError:
        raise TrialLimitExceeded(f"ran past tune.trial_timeout ({limits.timeout_s:g} s); its worker process was killed") from None
    except pebble.ProcessExpired as exc:
        raise TrialLimitExceeded(f"its worker process died (exit code {exc.exitcode}), e.g. killed by the system for memory or a crash in native code") from None


_EARLY: Any = None  # in a pool worker: the queue early answers go back on
_TOKEN: str | None = None  # in a pool worker: the job `start` is running now


def report_early(value: Any) -> bool:
    """In a job run by `ProcessExecutor.start`, hand `value` to the caller now and go on; False elsewhere."""
    if _EARLY is None or _TOKEN is None:
        return False
    _EARLY.put((_TOKEN, value))
    return True


def _with_token(token: str, fn: Callable[..., Any], args: tuple) -> Any:
    global _TOKEN
    _TOKEN = token
    try:
        return fn(*args)
    finally:
        _TOKEN = None


_EXECUTORS: dict[tuple, ThreadExecutor | ProcessExecutor] = {}
_LOCK = threading.Lock()
_STARTING: list[threading.Thread] = []  # threads creating an executor (`start_in_background`)


def get_executor(kind: str, workers: int, limits: Limits, preload: tuple[str, ...] = (), spare: int = 0) -> ThreadExecutor | ProcessExecutor:
    """The executor of this process for these settings, created on first use and shared by the trial threads."""
    key = (kind, workers, limits, preload, spare)
    with _LOCK:
        if key not in _EXECUTORS:
            if kind not in ("thread", "process"):
                raise TunedagError(f"tune.executor {kind!r} is unknown; use process or thread.")
            _EXECUTORS[key] = ProcessExecutor(workers, limits, preload, spare) if kind == "process" else ThreadExecutor(limits)
        return _EXECUTORS[key]


def start_in_background(start: Callable[[], Any]) -> None:
    """Run `start` (which creates an executor with `get_executor`) in a thread; `close_executors` waits for it."""
    thread = threading.Thread(target=start, name="tunedag-prestart-workers", daemon=True)
    _STARTING.append(thread)
    thread.start()


def close_executors() -> None:
    """Stop every worker pool of this process, once those starting in the background are up.

    The flow calls this when it ends, the command when it stops on bad input. A process that
    exits while its pool starts removes the pool's semaphores under the workers still starting,
    and each of them prints a multiprocessing traceback.
    """
    while _STARTING:
        _STARTING.pop().join(timeout=60)
    with _LOCK:
        for executor in _EXECUTORS.values():
            executor.close()
        _EXECUTORS.clear()


def main_module() -> str | None:
    """The name of this process's main module when it runs by name (`python -m flows.tune`), else None.

    multiprocessing runs that module again in every worker, as `__mp_main__` (a script's path
    too, but not a package's `__main__`). Preloaded by name in the forkserver, its imports are
    loaded there once, and each worker runs only the module's own body.
    """
    name = getattr(getattr(sys.modules["__main__"], "__spec__", None), "name", None)
    return None if name is None or name.endswith("__main__") else name


def _init_worker(limits: Limits, gpus: list[str], counter: Any, early: Any = None, preload: tuple[str, ...] = ()) -> None:
    global _EARLY
    _EARLY = early
    # A forkserver started earlier in this process (by another pool) has other modules loaded:
    # import ours before the memory cap, which counts only what a trial allocates.
    for module in preload:
        importlib.import_module(module)
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    if len(gpus) > 1:  # one GPU per concurrent trial: worker k sees GPU k mod n as its only device
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    _cap_threads(limits.threads)
    if limits.memory_mb:
        _cap_memory(limits.memory_mb)


def _cap_threads(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _cap_memory(memory_mb: int) -> None:
    """Cap the worker's address space at what it maps now (imports) plus `memory_mb`."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = mapped + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def visible_gpus() -> list[str]:
    """The GPUs trials may use, as `CUDA_VISIBLE_DEVICES` entries: that variable's own list when it is set, else every GPU.

    Counted without importing torch (the flow's process never does): through NVML, the NVIDIA
    driver's library, as torch counts them before CUDA starts. No driver, no GPU.
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:  # ids or UUIDs, as the user restricted them
        return [device.strip() for device in listed.split(",") if device.strip()]
    return [str(index) for index in range(_nvml_gpu_count())]


def _nvml_gpu_count() -> int:
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if nvml.nvmlInit_v2() != 0:
            return 0
    except (OSError, AttributeError):  # no driver, or one too old for these calls
        return 0
    try:
        count = ctypes.c_uint(0)
        return count.value if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 else 0
    finally:
        nvml.nvmlShutdown()
