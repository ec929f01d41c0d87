"""`tunedag` as the tests run it: in this process, or as a command line for a subprocess."""

from __future__ import annotations

import sys

# The `tunedag` console script's app (flows.cli), run by this interpreter; as under any `python -m`,
# the working directory is on sys.path, so a test project's own modules import.
TUNEDAG = (sys.executable, "-m", "flows.cli")


def tunedag(*args: str) -> int:
    """`tunedag *args` in this process, as the console script runs it; its exit code."""
    from flows.cli import app

    return app(list(args), standalone_mode=False)
