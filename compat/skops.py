"""skops' writer module, which skops keeps private (checked for 0.16.x by tests/compat).

tunedag swaps the `json` that `skops.io._persist` writes a file's `schema.json` with for a compact
one (modelio/skops_io.py); the module is reached here by name once `skops.io` is imported.
"""

from __future__ import annotations

import sys
from types import ModuleType

SUPPORTED = ("skops", "0.16", "0.17")
WRITER = "skops.io._persist"  # where `dump` / `dumps` serialise the schema with its module global `json`


def writer_module() -> ModuleType:
    """`skops.io._persist`, once `skops.io` is imported (modelio.skops_io imports it without the torch shim)."""
    return sys.modules[WRITER]
