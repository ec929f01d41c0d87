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


def cuda_device_after(seconds: float) -> str | None:
    """The UUID of the GPU this worker's trial computes on (None without CUDA), after holding the worker `seconds`."""
    import torch

    if not torch.cuda.is_available():
        time.sleep(seconds)
        return None
    (torch.ones(1024, device="cuda") * 2).sum().item()  # really on the device
    time.sleep(seconds)
    return str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)


def imported(module: str) -> bool:
    """Whether the process running the job has imported `module`."""
    import sys

    return module in sys.modules
