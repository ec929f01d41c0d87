"""Jobs on a Dask cluster (the one at `address`, or a LocalCluster of `workers` processes on 127.0.0.1).

Each Dask worker runs its jobs in a worker process of its own `ProcessRunner` (made once per worker by a WorkerPlugin),
so the timeout, the memory cap, a crash and their reasons are those of one machine. Workers read nothing from the
driver's disk: shipped files are scattered once and written to each worker's own directory (`runners.base.local_path`).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from runners.base import _SHIPPED, Limits, Runner, TrialLimitExceeded, answer
from runners.processes import ProcessRunner, visible_gpus

GRACE_S = 30.0  # the worker's own timer stops a job; this one, later, stops a worker that stopped answering


class DaskRunner(Runner):
    """`distributed.Client.submit` of each job to a worker's pool; a worker asking for a GPU resource gets one."""

    def __init__(self, workers: int, limits: Limits, address: str | None = None, preload: tuple[str, ...] = ()):
        import dask
        from distributed import Client, LocalCluster

        super().__init__(limits)
        gpus = visible_gpus()
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # a trial that kills its worker is not retried
            self._cluster = (
                None
                if address
                else LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None, host="127.0.0.1")
            )
        self._client = Client(address or self._cluster)
        self._plugin = f"tunedag-{uuid.uuid4().hex[:12]}"
        self._client.register_plugin(_Pool(limits, preload, None if address else gpus, self._plugin), name=self._plugin)
        self._lock, self._closed, self._jobs, self._files = threading.Lock(), False, {}, {}

    def ship(self, path: Path | str) -> None:
        data = Path(path).read_bytes()
        with self._lock:
            self._files[str(path)] = self._client.scatter(data, broadcast=True, hash=False)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        done: Future = Future()
        workers = self._client.scheduler_info(n_workers=-1)["workers"].values()
        gpu = {"GPU": 1} if any("GPU" in w.get("resources", {}) for w in workers) else None
        with self._lock:
            if self._closed:
                raise RuntimeError("submit on a closed runner")
            job = self._client.submit(_on_worker, self._plugin, dict(self._files), fn, *args, pure=False, resources=gpu)
            self._jobs[done] = job
        job.add_done_callback(lambda finished: self._settle(done, finished, None))
        if self.limits.timeout_s:
            timer = threading.Timer(self.limits.timeout_s + GRACE_S, self._settle, (done, job, self._timed_out()))
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
            answer(done, None, error)
            return self._stop(job)
        try:
            answer(done, job.result(), None)
        except KilledWorker as exc:
            answer(done, None, TrialLimitExceeded(f"its Dask worker died ({exc})"))
        except Exception as exc:  # the job's own error, a limit its pool enforced, or a cancelled job
            answer(done, None, TrialLimitExceeded("interrupted") if job.cancelled() else exc)

    def _stop(self, job: Any) -> None:
        """Cancel the job and restart the worker running it, which stopped answering (needs a nanny)."""
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
        for done, _ in jobs:
            answer(done, None, TrialLimitExceeded("interrupted")) if cancel else done.exception()
        try:  # the plugin's teardown stops each worker's pool and deletes the shipped files
            self._client.unregister_worker_plugin(self._plugin)
        finally:
            self._client.close()
            if self._cluster is not None:
                self._cluster.close()


class _Pool(WorkerPlugin):
    """Per Dask worker, once: its trial process (with the LocalCluster's k-th GPU for worker k) and the shipped files."""

    def __init__(self, limits: Limits, preload: tuple[str, ...], gpus: list[str] | None, name: str):
        self.limits, self.preload, self.gpus, self.name = limits, preload, gpus, name

    def setup(self, worker: Any) -> None:
        multiprocessing.current_process().daemon = False  # Dask's worker processes are daemonic, which may not have children
        if self.gpus and isinstance(worker.name, int):
            os.environ["CUDA_VISIBLE_DEVICES"] = self.gpus[worker.name] if worker.name < len(self.gpus) else ""
        self.folder, self.copies, self.lock = Path(worker.local_directory) / self.name, {}, threading.Lock()
        self.runner = ProcessRunner(1, self.limits, self.preload)

    def teardown(self, worker: Any) -> None:
        self.runner.close(cancel=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def local(self, files: dict[str, bytes]) -> dict[str, str]:
        """This worker's copy of each shipped file, written on its first job."""
        with self.lock:
            for index, (path, data) in enumerate(files.items()):
                if path not in self.copies:
                    copy = self.folder / f"{len(self.copies)}-{index}-{Path(path).name}"
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    copy.with_suffix(".part").write_bytes(data)
                    self.copies[path] = str(copy.with_suffix(".part").replace(copy))
            return {path: self.copies[path] for path in files}


def _on_worker(plugin: str, files: dict[str, bytes], fn: Callable[..., Any], *args: Any) -> Any:
    """The Dask task: `fn(*args)` in this worker's trial process, which ends it at the limits as on one machine."""
    from distributed import get_worker

    pool = get_worker().plugins[plugin]
    return pool.runner.submit(_with_files, pool.local(files), fn, *args).result()


def _with_files(files: dict[str, str], fn: Callable[..., Any], *args: Any) -> Any:
    _SHIPPED.update(files)
    return fn(*args)
