"""One trial per GPU on real CUDA devices: runs where CUDA is present (a device machine), skipped elsewhere.

Without GPUs the same assignment is checked with a fake device list in test_processes.py and test_dask.py.
"""

from __future__ import annotations

import pytest

from hosts.resources import visible_gpus
from runners import Limits
from runners.dask import DaskRunner
from runners.processes import ProcessRunner
from tests.runners import more_jobs

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
PRELOAD = ("tests.runners.more_jobs",)


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_trials_at_once_use_every_gpu_and_never_share_one(kind):
    gpus = len(visible_gpus())
    workers = gpus + 1  # one more trial than GPUs: it runs on the CPU, not on a GPU another trial holds
    runner = (
        ProcessRunner(workers, Limits(threads=1), PRELOAD)
        if kind == "process"
        else DaskRunner(workers, Limits(threads=1), None, PRELOAD)
    )
    try:
        seen = [f.result(timeout=300) for f in [runner.submit(more_jobs.cuda_device_after, 3.0) for _ in range(workers)]]
    finally:
        runner.close()
    used = [uuid for uuid in seen if uuid is not None]
    assert len(used) == len(set(used)) == gpus and seen.count(None) == 1
