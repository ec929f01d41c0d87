"""The command-line entry every stage shares: validate params.yaml once, run the flow, exit cleanly.

Light to import (Prefect is imported when the flow runs): a stage command may load its config
and start work that needs no Prefect API (`warm_start`) from its first lines, before the flow's imports.
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys
from typing import TYPE_CHECKING, Any, Callable


from flows._inputs import CHECKS
from flows._server import discard_unused, start_early, temporary_server
from tunedag.errors import TunedagError

if TYPE_CHECKING:
    from tunedag.config import Config  # imports scikit-learn (2 s): loaded when a config is, not for `--help`

_EARLY: tuple[tuple[str, tuple[str, ...]], Config] | None = None  # the config `warm_start` loaded, for `execute`
TRIAL_FLOWS = ("flows.tune", "flows.worker")  # the flows that run trials on the worker pool


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


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """`--params` and repeated `--set KEY=VALUE`; argparse exits with its usage message on a bad command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="the config file (default: params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key of the config, e.g. --set tune.n_trials=50")
    return parser.parse_args(argv)


def main(run: Callable[[Config], Any], description: str, argv: list[str] | None = None,
         warm_up: Callable[[Config], None] | None = None) -> int:
    """Parse `--params` and `--set`, load the config, run; errors print one paragraph and exit 2."""
    args = parse_args(description, argv)
    return execute(run, args.params, args.overrides, warm_up)


def warm_start(warm_up: Callable[[Config], None] | None, params: str, overrides: list[str],
               check: Callable[[Config], None] | None = None) -> None:
    """Load the config now, before the flow's imports, run `check(cfg)` and call `warm_up(cfg)` (each when given).

    A config that does not validate, or input the check refuses, ends the command here: its one
    paragraph, exit code 2, and none of the flow's imports waited for. `execute` with the same
    arguments then uses this config instead of loading it again.
    """
    global _EARLY
    from tunedag.config import load_config

    try:
        cfg = load_config(params, parse_overrides(overrides))
        if check is not None:
            check(cfg)
    except TunedagError as exc:
        raise SystemExit(refuse(exc)) from None
    _EARLY = ((params, tuple(overrides)), cfg)
    if warm_up is not None:
        warm_up(cfg)


def start_stage(module: str, params: str, overrides: list[str]) -> None:
    """A stage command's first step, before its flow's imports (`module`, as `flows.tune`).

    Prefect's temporary server is launched, the config loaded and the stage's input checked
    (`flows._inputs.CHECKS`), and a flow that runs trials starts its workers from the validated
    config; bad input ends the command here (`warm_start`).
    """
    start_early()
    prestart = importlib.import_module("tasks.pool").prestart if module in TRIAL_FLOWS else None
    warm_start(prestart, params, overrides, CHECKS.get(module))


def refuse(exc: TunedagError) -> int:
    """Stop what the command started early, print the one-paragraph message; the exit code, 2."""
    from tunedag.executor import close_executors

    discard_unused()  # before the message: nothing of a half-started server's or worker pool's may follow it
    close_executors()  # trial workers prestarted for the run
    print(f"tunedag: error: {exc}", file=sys.stderr)
    return 2


def execute(run: Callable[[Config], Any], params: str, overrides: list[str],
            warm_up: Callable[[Config], None] | None = None) -> int:
    """Load and validate the config once, run; 0 on success, 2 on a TunedagError (one paragraph), 130 when interrupted.

    `warm_up(cfg)` starts work that needs no Prefect API before the command waits for the temporary
    server that `flows._server.start_early` launched; `run` then runs with Prefect pointed at it.
    A stage's own input check runs earlier, in `warm_start`, before the flow's imports.
    """
    from prefect.exceptions import TerminationSignal

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        cfg = _load(params, overrides)
        if warm_up is not None:
            warm_up(cfg)
        with temporary_server():
            run(cfg)
    except TunedagError as exc:
        return refuse(exc)
    except (KeyboardInterrupt, TerminationSignal):
        print("tunedag: interrupted; finished trials are kept, run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _load(params: str, overrides: list[str]) -> Config:
    """The config `warm_start` loaded for these arguments (once), else a fresh load."""
    global _EARLY
    early, _EARLY = _EARLY, None
    if early is not None and early[0] == (params, tuple(overrides)):
        return early[1]
    from tunedag.config import load_config

    return load_config(params, parse_overrides(overrides))


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops a run the way Ctrl-C does: open runs are closed, and the next run resumes."""
    raise KeyboardInterrupt
