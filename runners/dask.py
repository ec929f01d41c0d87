"""Jobs on a Dask cluster (at `address`, or a LocalCluster of `workers` processes), each in its worker's own ProcessRunner.

So a trial's timeout, memory cap and crash end it as on one machine. Workers read nothing from the driver's disk:
each shipped file is a worker plugin, which the scheduler hands to every worker (those that join later too) and which
writes it to the worker's own folder as the worker starts (`runners.base.local_path`); workers keep it on disk only.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from hosts.resources import visible_gpus
from runners.base import Limits, Runner, TrialLimitExceeded, answer, run_shipped
from runners.processes import ProcessRunner

GRACE_S = 30.0  # the worker's trial process enforces the timeout; this long past it, counted from the job's start, a silent worker's job is given up
# A LocalCluster's timers wake each process ~70 times a second (~10% of a core with 2 workers, taken from the trials):
# profiling off, the event loop's health check (20 ms), system (500 ms) and memory (100 ms) monitors slowed down.
QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}


class DaskRunner(Runner):
    """`distributed.Client.submit` of each job to a worker's pool; a worker asking for a GPU resource gets one."""

    def __init__(self, workers: int, limits: Limits, address: str | None = None, preload: tuple[str, ...] = ()):
        import dask
        from distributed import Client, LocalCluster

        super().__init__(limits)
        local = {"n_workers": workers, "threads_per_worker": 1, "dashboard_address": None, "host": "127.0.0.1"}
        with dask.config.set(QUIET):  # the nannies hand it on to their worker processes
            self._cluster = None if address else LocalCluster(**local)
        self._client, self._plugin, self._files = Client(address or self._cluster), f"tunedag-{uuid.uuid4().hex[:12]}", {}
        self._client.register_plugin(_Pool(limits, preload, None if address else visible_gpus(), self._plugin), name=self._plugin)
        self._client.subscribe_topic(self._plugin, self._started)

    def ship(self, path: Path | str) -> None:
        name = f"{self._plugin}-file-{uuid.uuid4().hex[:12]}"  # unique without the lock: two ships may run at once
        self._client.register_plugin(_File(str(path), Path(path).read_bytes(), self._plugin), name=name)
        with self._lock:
            self._files[str(path)] = name

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        workers = self._client.scheduler_info()["workers"].values()
        gpu = {"GPU": 1} if any("GPU" in w.get("resources", {}) for w in workers) else None
        task = (_on_worker, self._plugin, dict(self._files), pickle.dumps((fn, args)))  # opened in the trial process only
        done, job = self._track(lambda: self._client.submit(*task, pure=False, resources=gpu))
        job.add_done_callback(lambda finished: self._settle(done, finished))
        return done

    def _started(self, event: tuple[float, str]) -> None:
        """A job began on its worker (`_on_worker` says so): its backstop timer starts now, so a queued job is not timed."""
        with self._lock:
            done = next((d for d, job in self._jobs.items() if job.key == event[1]), None)
        if done is not None and self.limits.timeout_s:
            self._arm(done, self.limits.timeout_s + GRACE_S)

    def _settle(self, done: Future, job: Any) -> None:
        from distributed.scheduler import KilledWorker

        try:
            answer(done, pickle.loads(job.result()), None)
        except KilledWorker as exc:
            answer(done, None, TrialLimitExceeded(f"its Dask worker died ({exc})"))
        except Exception as exc:  # the job's own error, a limit its trial process enforced, or a cancelled job
            answer(done, None, TrialLimitExceeded("interrupted") if job.cancelled() else exc)

    def close(self, cancel: bool = False) -> None:
        jobs = self._closing()
        if jobs is None:
            return
        for done, _ in jobs:
            answer(done, None, TrialLimitExceeded("interrupted")) if cancel else done.exception()
        try:  # the plugins' teardowns stop each worker's pool and delete the shipped files (the scheduler drops them)
            for name in [self._plugin, *self._files.values()]:
                self._client.unregister_worker_plugin(name)
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
        self.folder = Path(worker.local_directory) / self.name
        tables = Path(worker.local_directory).parent / "tunedag-tables"  # the host's: its workers map one Arrow cache
        os.environ.setdefault("TUNEDAG_TABLE_CACHE_DIR", str(tables))
        self.runner = ProcessRunner(1, self.limits, self.preload)

    def teardown(self, worker: Any) -> None:
        self.runner.close(cancel=True)
        shutil.rmtree(self.folder, ignore_errors=True)


class _File(WorkerPlugin):
    """One shipped file: written to the worker's folder `folder` as the worker starts; the bytes are dropped after."""

    def __init__(self, path: str, data: bytes, folder: str):
        self.path, self.data, self.folder, self.copy = path, data, folder, ""

    def setup(self, worker: Any) -> None:
        folder = Path(worker.local_directory) / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        (part := folder / f"{uuid.uuid4().hex}.part").write_bytes(self.data)
        self.copy, self.data = str(part.replace(part.with_suffix(Path(self.path).suffix))), b""  # on disk, not in memory

    def teardown(self, worker: Any) -> None:
        if self.copy:
            Path(self.copy).unlink(missing_ok=True)


def _on_worker(plugin: str, files: dict[str, str], job: bytes) -> bytes:
    """The Dask task: the job, pickled through the Dask worker (which never imports the trial code), in its trial process.

    `files`: the driver's path of each shipped file -> the name of its `_File` plugin, which holds this worker's copy."""
    worker = get_worker()
    worker.log_event(plugin, worker.get_current_task())  # the driver's backstop timer starts now
    copies = {path: worker.plugins[name].copy for path, name in files.items()}
    return worker.plugins[plugin].runner.submit(run_shipped, copies, job).result()
