"""Module-level functions for runner tests (worker processes import them by name)."""

from __future__ import annotations

import os
import time

import numpy as np


def pid_and_double(x: int) -> tuple[int, int]:
    return os.getpid(), 2 * x


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def crash() -> None:
    os._exit(7)


def allocate(mb: int) -> int:
    block = np.ones(mb * 1024 * 1024 // 8)
    return int(block.sum())


def blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info()]


def raise_value_error() -> None:
    raise ValueError("bad input")


def visible_devices_after(seconds: float) -> str | None:
    """The worker's CUDA_VISIBLE_DEVICES, after holding the worker `seconds` (so concurrent jobs land on different ones)."""
    time.sleep(seconds)
    return os.environ.get("CUDA_VISIBLE_DEVICES")
