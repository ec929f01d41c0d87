"""skops' writer module and its list of trusted scikit-learn types, which skops keeps private (checked by tests/compat).

tunedag swaps the `json` that `skops.io._persist` writes a file's `schema.json` with for a compact
one (modelio/skops_io.py); the module is reached here by name once `skops.io` is imported. The
tests compare skops' own list of trusted scikit-learn types with and without tunedag's light import.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

SUPPORTED = ("skops", "0.16", "0.17")
WRITER = "skops.io._persist"  # where `dump` / `dumps` serialise the schema with its module global `json`


def writer_module() -> ModuleType:
    """`skops.io._persist`, once `skops.io` is imported (modelio.skops_io imports it without the torch shim)."""
    return sys.modules[WRITER]


def sklearn_type_names() -> list[str]:
    """The scikit-learn types skops trusts by default (`skops.io._trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES`)."""
    return list(importlib.import_module("skops.io._trusted_types").SKLEARN_ESTIMATOR_TYPE_NAMES)
