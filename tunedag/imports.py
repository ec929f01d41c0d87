"""Objects named by import path in `params.yaml`: estimators, training functions, module factories."""

from __future__ import annotations

import importlib
from typing import Any

from tunedag.errors import ConfigError


def import_named(path: str, key: str, example: str, colon: bool = True,
                 error: type[Exception] = ConfigError) -> tuple[str, Any]:
    """Import `package.module:name` (or `package.module.name`); return the module's name and the object, or None.

    `key` names the config key in messages; `error` is raised for a malformed path or a module
    that does not import.
    """
    module_name, _, attr = path.partition(":") if colon and ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise error(f"{key} {path!r} must be an import path like {example}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{key} {path!r}: module {module_name!r} cannot be imported ({exc})") from None
    return module_name, getattr(module, attr, None)
