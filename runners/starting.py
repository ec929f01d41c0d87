"""The trial runner a study's config names, started in a thread while the command goes on.

Light to import (no Prefect, no MLflow): `tunedag tune` and `tunedag worker` start it once the config and the inputs
are checked, so its workers import the trial code while the command imports its flow (`flows._cli.execute`).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

from hosts.resources import default_threads
from runners import Limits, Runner, make_runner

if TYPE_CHECKING:
    from tunedag.config import Config

PRELOAD = ("trials.job", "mlflow.sklearn", "modelio.skops_io")  # what the forkserver imports once
NETS_PRELOAD = ("tunedag.nets", "mlflow.pytorch", "modelio.torch_models")  # torch itself, for studies of networks


def runner_for(cfg: Config) -> Runner:
    """The runner `tune.runner.kind` and `tune.executor` name, with the trial limits and the trial code preloaded."""
    from tunedag.estimators import is_torch_estimator

    tune = cfg.tune
    limits = Limits(default_threads(tune.parallelism, tune.threads_per_trial), tune.trial_timeout, tune.trial_memory_mb)
    nets = any(f.estimator and is_torch_estimator(f.estimator) for f in cfg.families.values())
    kind = "dask" if tune.runner.kind == "dask" else tune.executor
    return make_runner(kind, tune.parallelism, limits, PRELOAD + (NETS_PRELOAD if nets else ()), tune.runner.address)


@contextmanager
def start_runner(cfg: Config) -> Iterator[Future]:
    """A future of `runner_for(cfg)`, started in a thread (its workers import the trial code meanwhile); closed on the way out.

    Closed cancelling its jobs when the block raises (Ctrl-C included), after waiting for it to be built.
    """
    starting = ThreadPoolExecutor(1, thread_name_prefix="tunedag-runner")
    runner = starting.submit(runner_for, cfg)
    starting.shutdown(wait=False)
    try:
        yield runner
    except BaseException:
        runner.result().close(cancel=True)
        raise
    runner.result().close()
