"""This process's trial executor for a config: which worker pool, what its forkserver preloads, started early.

Light on purpose (no MLflow, no Prefect): a stage command starts the workers from its first lines,
before it imports the flow, so the forkserver's imports of the trial code run beside the command's own.
"""

from __future__ import annotations

from tunedag.config import Config
from tunedag.estimators import is_torch_estimator
from tunedag.executor import (Limits, ProcessExecutor, ThreadExecutor, default_threads, get_executor, main_module,
                              start_in_background)

# What the forkserver imports once, so each new worker process starts warm.
PRELOAD = ("tasks.trial_worker", "mlflow.sklearn", "tunedag.skops_io")
NETS_PRELOAD = ("tunedag.nets", "mlflow.pytorch")  # torch itself, for studies of networks
COMMANDS = "flows."  # tunedag's stage commands (python -m flows.tune): their modules import cleanly anywhere


def executor_for(cfg: Config, kind: str | None = None) -> ThreadExecutor | ProcessExecutor:
    """The trial executor of this process for `cfg` (shared by the trial tasks, closed by the flow)."""
    tune = cfg.tune
    limits = Limits(default_threads(tune.parallelism, tune.threads_per_trial), tune.trial_timeout, tune.trial_memory_mb)
    # One spare worker: a trial that has answered early writes its model while the next trial runs.
    return get_executor(kind or tune.executor, tune.parallelism, limits, preload_for(cfg), spare=1)


def preload_for(cfg: Config) -> tuple[str, ...]:
    """What the forkserver imports for `cfg`'s trials: the trial code, torch for networks, and the stage command's module.

    multiprocessing runs the main module again in every worker (`tunedag.executor.main_module`):
    for `python -m flows.tune` that is Prefect, Optuna and the flow, 1.7 s of CPU a worker here,
    unless the forkserver has them. Only a stage command's module is preloaded: another main module
    may need its command line to import, and the forkserver stops on any error but an ImportError.
    """
    nets = any(f.estimator and is_torch_estimator(f.estimator) for f in cfg.families.values())
    command = main_module()
    return (PRELOAD + (NETS_PRELOAD if nets else ())
            + ((command,) if command and command.startswith(COMMANDS) else ()))


def prestart(cfg: Config) -> None:
    """Start this process's trial executor in the background, beside other start-up work (the first trial waits for it)."""
    def start() -> None:
        try:
            executor_for(cfg)
        except Exception:  # the trial loop's own call raises it where it can be reported
            pass

    # No prepared data: the command refuses to run at once, and would first wait for workers started for nothing.
    if cfg.tune.executor == "process" and cfg.tune.runner.kind == "local" and cfg.paths.prepared.is_file():
        start_in_background(start)
