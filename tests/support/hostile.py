"""A class an attacker would ship inside a model file: loading it runs code (it writes the marker file)."""

from __future__ import annotations

import os
from pathlib import Path

MARKER_ENV = "TUNEDAG_TEST_MARKER"  # where Tripwire writes when its __setstate__ runs


class Tripwire:
    """Harmless stand-in for a hostile class: restoring its state writes $TUNEDAG_TEST_MARKER."""

    def __init__(self) -> None:
        self.armed = True

    def __setstate__(self, state: dict) -> None:
        Path(os.environ[MARKER_ENV]).write_text("code from the model file ran")
        self.__dict__.update(state)
