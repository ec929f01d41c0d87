"""Jobs for the GPU and Dask runner tests (workers import them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from runners.base import local_path


def device_unless(crash_on: str, seconds: float) -> str | None:
    """The worker's CUDA_VISIBLE_DEVICES after `seconds`; the worker exits first when that is `crash_on`."""
    time.sleep(seconds)
    if os.environ.get("CUDA_VISIBLE_DEVICES") == crash_on:
        os._exit(9)
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def read_shipped(path: str) -> tuple[str, bytes]:
    """Where the job reads the driver's file `path`, and its bytes."""
    local = local_path(path)
    return str(local), Path(local).read_bytes()


def cwd_and_env(name: str) -> tuple[str, str | None]:
    return os.getcwd(), os.environ.get(name)
