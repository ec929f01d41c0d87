"""A trial process's share of the host: threads, a memory cap and a GPU of its own, found without importing torch."""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from pathlib import Path
from typing import Any


def default_threads(parallelism: int, requested: int | None = None) -> int:
    """Threads per trial: as requested, else the cores shared out between the parallel trials."""
    return requested or max(1, (os.cpu_count() or 1) // parallelism)


def cap_threads(threads: int) -> None:
    """Cap BLAS / OpenMP / torch threads in this process (inherited by what it starts)."""
    from threadpoolctl import threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def cap_memory(memory_mb: int) -> None:
    """Cap the worker's address space at what it maps now (imports) plus `memory_mb`."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = mapped + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def visible_gpus() -> list[str]:
    """The GPUs trials may use: `CUDA_VISIBLE_DEVICES`'s list when set, else every GPU NVML counts (no torch import)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [device.strip() for device in listed.split(",") if device.strip()]
    try:
        nvml, count = ctypes.CDLL("libnvidia-ml.so.1"), ctypes.c_uint(0)
        if nvml.nvmlInit_v2() != 0:
            return []
    except (OSError, AttributeError):  # no driver, or one too old for these calls
        return []
    counted = nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0
    nvml.nvmlShutdown()
    return [str(i) for i in range(count.value)] if counted else []


def claim_gpu(gpus: list[str], owners: Any) -> str:
    """The first GPU no live worker holds, now held by this one until it dies (a worker runs one trial at a time); else ""."""
    with owners.get_lock():
        for i, pid in enumerate(owners):
            if not pid or not _alive(pid):
                owners[i] = os.getpid()
                return gpus[i]
    return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie holds nothing
    except OSError:
        return False
