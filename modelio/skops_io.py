"""`skops.io`, imported without the torch import that scikit-learn's estimator walk drags in, writing compact schemas.

skops builds its default trusted-type list at import with scikit-learn's `all_estimators()`.
Its `pkgutil.walk_packages` imports every sub-package on the way, among them
`sklearn.externals.array_api_compat.torch`, which imports torch: 1.5 s of a 3.9 s import here, for
a list of scikit-learn names that never needed torch. While skops imports, that one package is
refused (the walk skips packages that fail to import); the list comes out the same
(tests/tunedag/test_skops_io.py) and the package imports normally afterwards. When torch is
already loaded (studies of networks) skops is imported as it is.

skops writes a file's `schema.json` with `json.dumps(state, indent=2)`, and an indent makes Python
use its pure-Python JSON encoder instead of the C one. For tunedag's preprocessing pipeline (an
88 kB schema) that was a third of the CPU of an MLflow model save, on every trial's model (14.1 ms
against 9.3 ms compact: benchmarks/model_save.py). The schema is written compact instead; skops
and MLflow read it back the same (tests/tunedag/test_skops_io.py).

Import this module where skops is needed; a worker's forkserver preloads it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import json
import sys
from types import ModuleType
from typing import Any

from compat.skops import writer_module

TORCH_SHIM = "sklearn.externals.array_api_compat.torch"


class _RefuseTorchShim(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == TORCH_SHIM or name.startswith(TORCH_SHIM + "."):
            raise ImportError(f"{name} is not needed to list scikit-learn's estimators")
        return None


def load() -> ModuleType:
    """`skops.io`, imported once without the torch shim when torch is not loaded yet."""
    if "skops.io" in sys.modules or "torch" in sys.modules:
        return importlib.import_module("skops.io")
    finder = _RefuseTorchShim()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("skops.io")
    finally:
        sys.meta_path.remove(finder)


class CompactJson:
    """Stands in for the `json` module in skops' writer: `dumps` without indentation, on the C encoder."""

    loads = staticmethod(json.loads)

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        kwargs.pop("indent", None)
        return json.dumps(obj, separators=(",", ":"), **kwargs)


def compact_schemas(persist: ModuleType) -> None:
    """Make skops' writer module (`compat.skops.writer_module`) write `schema.json` compact."""
    if getattr(persist, "json", None) is json:
        persist.json = CompactJson


skops_io = load()
compact_schemas(writer_module())
