"""The command-line entry every stage shares: load and validate params.yaml once, check the stage's inputs, run the flow.

`execute` is what every `tunedag` command ends in (flows.cli): exit code 0 on
success, 2 on bad input (one paragraph naming the key or file, also when a flow run raised it),
130 when interrupted. Light to import (Prefect is imported when the flow runs), so `tunedag --help`
answers at once and a config that does not validate is refused before any heavy import.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.prefect_api import Lease, ServerError
from tunedag.errors import TunedagError

if TYPE_CHECKING:
    from tunedag.config import Config  # imports scikit-learn (2 s): loaded when a config is, not for `--help`

# The flows whose `run(cfg, runner)` takes the trial runner `execute` starts before importing them.
TRIAL_FLOWS = frozenset({"flows.tune", "flows.worker"})

# Prefect's loggers that report a failed flow or task run with its traceback.
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key.sub=value` pairs, values read as plain YAML (`tune.n_trials=30`); a bad one is refused naming its `--set`."""
    from tunedag.config_yaml import load_yaml_text

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", key):
            raise TunedagError(f"--set {pair!r} must look like section.key=value")
        out[key] = load_yaml_text(value, f"--set {key}")
    return out


@contextmanager
def handling(handler: Callable[[int, Any], None], *signums: int) -> Iterator[None]:
    """Within the block, `handler` handles `signums`; the previous handlers come back after. Only the main
    thread may set handlers: elsewhere nothing changes."""
    main = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, handler) for signum in signums} if main else {}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def execute(
    run: Callable[[Config], Any] | str,
    params: str,
    overrides: list[str],
    *,
    check: Callable[[Config], None] | None = None,
    debug: bool = False,
    prefect_api: bool = False,
    trial_runner: bool = False,
) -> int:
    """Load and validate the config once, `check(cfg)`, run; 0 on success, 2 on a TunedagError (one paragraph), 130 when interrupted.

    `run` is the function, or `"module:function"` imported only after the config and the check
    passed (a refusal comes before the flow's imports). With `prefect_api`, the run uses the
    project's Prefect server (services.prefect_api) unless Prefect's settings name an API; it is
    launched before the flow's imports so that both proceed at once. With `trial_runner` (a flow that runs
    trials), the trial runner (`runners.starting.start_runner`) starts then too, and `run(cfg, runner)` gets it.
    """
    # MLflow's usage telemetry writes an installation id under ~/.config and reports usage over the network: outside
    # the project, so off unless the user set MLFLOW_DISABLE_TELEMETRY (Prefect's analytics and DVC's are off too).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with handling(_interrupt, signal.SIGTERM):
        try:
            from tunedag.config import load_config

            cfg = load_config(params, parse_overrides(overrides))
            if check is not None:
                check(cfg)
            with _project_api(prefect_api) as lease, quiet_refusals(not debug), _trial_runner(cfg, trial_runner) as runner:
                if isinstance(run, str):
                    module, _, name = run.partition(":")
                    run = getattr(importlib.import_module(module), name)
                with _point_prefect_at(lease):
                    run(cfg, runner) if trial_runner else run(cfg)
        except TunedagError as exc:
            return refuse(exc, debug)
        except ServerError as exc:
            return refuse(TunedagError(str(exc)), debug)
        except BaseException as exc:
            if why := _write_failure(exc):
                return refuse(
                    TunedagError(f"A write failed: {why}. Free space there (or make it writable) and run again."), debug
                )
            if not _interrupted(exc):
                raise
            print("tunedag: interrupted; finished trials are kept, run the same command again to resume", file=sys.stderr)
            return 130
    return 0


def refuse(exc: TunedagError, debug: bool = False) -> int:
    """Print the one-paragraph message (after its traceback with `debug`); the exit code, 2."""
    if debug:
        traceback.print_exception(exc)
    print(f"tunedag: error: {exc}", file=sys.stderr)
    return 2


@contextmanager
def _project_api(wanted: bool) -> Iterator[Lease | None]:
    """A lease on the project's Prefect server when wanted and no API is configured yet; released at the end."""
    configured = os.environ.get("PREFECT_API_URL")
    if not configured and "prefect.settings" in sys.modules:  # already imported (tests): ask Prefect
        from prefect.settings import get_current_settings

        configured = get_current_settings().api.url
    if not wanted or configured:
        yield None
        return
    lease = Lease(Path.cwd())
    try:
        yield lease
    finally:
        lease.release()


@contextmanager
def _trial_runner(cfg: Config, wanted: bool) -> Iterator[Any]:
    """The trial runner's future when wanted (its workers import the trial code while the flow's module is imported)."""
    if not wanted:
        yield None
        return
    from runners.starting import start_runner

    with start_runner(cfg) as runner:
        yield runner


@contextmanager
def _point_prefect_at(lease: Lease | None) -> Iterator[None]:
    """Prefect (and every process the run starts) uses the leased server, unless a profile or prefect.toml names an API.

    Its flow runs send no heartbeats unless Prefect's settings set `flows.heartbeat_frequency`. Prefect sends them
    by default from a thread that sleeps in one-second steps, and a flow run ends only once that thread wakes: up to
    a second more for every stage. They serve a server automation that marks silent flow runs crashed, which the
    project's own server does not have; a server the user names keeps Prefect's default.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_UI_URL,
        get_current_settings,
        temporary_settings,
    )

    if lease is None or get_current_settings().api.url:
        yield
        return
    url = lease.wait()
    if lease.started:
        print(
            f"tunedag: Prefect API for this project on {url} (it stops after {lease.idle_s:g} s without a stage)", file=sys.stderr
        )
    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        updates: dict = {PREFECT_API_URL: url, PREFECT_UI_URL: ""}  # it serves no UI: no "View at" links
        if "heartbeat_frequency" not in get_current_settings().flows.model_fields_set:
            updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
        with temporary_settings(updates):
            yield
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved


class RefusalFilter(logging.Filter):
    """Drops Prefect's report of a run failed by a refusal (a TunedagError): its traceback, and the state line after it.

    The command prints the refusal itself, as one paragraph. Every other failure is logged as Prefect logs it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[str] = set()  # class names of the refusals seen, as Prefect's state messages print them

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TunedagError) or (exc is not None and _write_failure(exc)):
            self.refused.add(f"{type(exc).__name__}: ")
            return False
        message = record.getMessage()
        return not (message.startswith("Finished in state Failed") and any(name in message for name in self.refused))


@contextmanager
def quiet_refusals(enabled: bool = True) -> Iterator[None]:
    """`RefusalFilter` on Prefect's flow and task run loggers for the block."""
    if not enabled:
        yield
        return
    refusals = RefusalFilter()
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(refusals)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(refusals)


def _write_failure(exc: BaseException) -> str | None:
    """Why a run failed on a disk or store that refuses writes (`stageio.files.write_failure`), else None."""
    from stageio.files import write_failure

    return None if isinstance(exc, (TunedagError, KeyboardInterrupt)) else write_failure(exc)


def _interrupted(exc: BaseException) -> bool:
    """Ctrl-C, SIGTERM, or Prefect's own termination signal (Prefect is imported once a flow ran)."""
    prefect_exceptions = sys.modules.get("prefect.exceptions")
    return isinstance(exc, KeyboardInterrupt) or (
        prefect_exceptions is not None and isinstance(exc, prefect_exceptions.TerminationSignal)
    )


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops a run the way Ctrl-C does: open runs are closed, and the next run resumes."""
    raise KeyboardInterrupt
