"""Module-level functions for executor tests (worker processes import them by name)."""

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


def answer_early_then_sleep(value, seconds: float):
    """Hand `value` back early, then keep the worker busy `seconds` (a trial writing its model)."""
    from tunedag.executor import report_early

    report_early(value)
    time.sleep(seconds)
    return value * 2


def answer_early_then_wait(value, release: str, most_s: float = 60.0):
    """Hand `value` back early, then keep the worker busy until the file `release` exists (at most `most_s`)."""
    from pathlib import Path

    from tunedag.executor import report_early

    report_early(value)
    deadline = time.monotonic() + most_s
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return value * 2


def visible_devices_after(seconds: float) -> str | None:
    """The worker's CUDA_VISIBLE_DEVICES, after holding the worker `seconds` (so concurrent jobs land on different ones)."""
    time.sleep(seconds)
    return os.environ.get("CUDA_VISIBLE_DEVICES")
