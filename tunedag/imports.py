"""Objects named by import path in `params.yaml`: estimators, training functions, module factories.

A path is checked as a string before anything is imported: it must be a dotted name under one of
the allowed module prefixes (ALLOWED_MODULES, the environment's TUNEDAG_ALLOWED_MODULES, and the
config's `model.allowed_modules`), and never under a module that runs commands or code
(REFUSED_MODULES, even when listed). A clone's own folder is on `sys.path` (its editable install, and the
working directory under `python -m`), so without the list a local `evil_mod.py` would be imported (and run) by naming it.

The allow-list is enforced where params.yaml is validated (`enforce=True`); the stages resolve
the same, validated paths again later (in trial workers, which do not see the config's list) with
only the string checks and the refused modules.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from tunedag.errors import ConfigError

# Modules whose objects params.yaml may name without saying more: scikit-learn, the gradient
# boosting libraries with scikit-learn estimators, and tunedag's own networks.
ALLOWED_MODULES = ("sklearn", "xgboost", "lightgbm", "catboost", "tunedag.nets")
# Never imported from params.yaml, even when listed: they run commands, code or read memory.
REFUSED_MODULES = (
    "builtins",
    "os",
    "posix",
    "nt",
    "sys",
    "subprocess",
    "shutil",
    "importlib",
    "runpy",
    "pickle",
    "marshal",
    "ctypes",
    "socket",
    "code",
    "codeop",
    "pty",
    "signal",
    "tempfile",
    "pathlib",
    "io",
    "multiprocessing",
    "threading",
    "webbrowser",
    "this",
    "antigravity",
    "pdb",
    "gc",
    "inspect",
)
ENV_ALLOWED = "TUNEDAG_ALLOWED_MODULES"  # comma-separated module prefixes, like model.allowed_modules

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_EXTRA: ContextVar[tuple[str, ...]] = ContextVar("tunedag_allowed_modules", default=())


def allowed_modules() -> tuple[str, ...]:
    """The module prefixes import paths may name now: the defaults, the environment's, the config's being validated."""
    env = tuple(m.strip() for m in os.environ.get(ENV_ALLOWED, "").split(",") if m.strip())
    return ALLOWED_MODULES + env + _EXTRA.get()


@contextmanager
def allowing(extra: Sequence[str]) -> Iterator[None]:
    """Within the block, the module prefixes in `extra` (a config's model.allowed_modules) are allowed too."""
    token = _EXTRA.set(tuple(extra))
    try:
        yield
    finally:
        _EXTRA.reset(token)


def check_module_name(name: str, key: str = "model.allowed_modules") -> str:
    """A module prefix for the allow-list: a dotted name, not one of the refused modules."""
    if not isinstance(name, str) or not _MODULE.fullmatch(name):
        raise ConfigError(f"{key}: {name!r} is not a module name (letters, digits, _ and dots)")
    if _under(name, REFUSED_MODULES):
        raise ConfigError(f"{key}: {name!r} is a module tunedag never imports from params.yaml (it runs commands or code)")
    return name


def check_import_path(
    path: str, key: str, example: str, colon: bool = True, error: type[Exception] = ConfigError, enforce: bool = True
) -> tuple[str, str]:
    """Split `package.module:name` (or `package.module.name`) into module and name, importing nothing.

    Raises `error` for a malformed path, a refused module, or (with `enforce`) a module outside
    `allowed_modules()`, naming `key` and how to allow a module.
    """
    if not isinstance(path, str):
        raise error(f"{key} must be an import path like {example}, got {type(path).__name__}")
    module_name, _, attr = path.partition(":") if colon and ":" in path else path.rpartition(".")
    if not _MODULE.fullmatch(module_name or "") or not attr.isidentifier():
        raise error(f"{key} {path!r} must be an import path like {example}")
    if _under(module_name, REFUSED_MODULES):
        raise error(f"{key} {path!r} names module {module_name!r}, which tunedag never imports from params.yaml; refused")
    allowed = allowed_modules()
    if enforce and not _under(module_name, allowed):
        raise error(
            f"{key} {path!r}: module {module_name!r} is not among the modules tunedag imports from "
            f"({', '.join(allowed)}); nothing was imported. If you trust it, list its package in "
            f"model.allowed_modules in params.yaml (e.g. [{module_name.split('.')[0]}])"
        )
    return module_name, attr


def import_named(
    path: str, key: str, example: str, colon: bool = True, error: type[Exception] = ConfigError, enforce: bool = True
) -> tuple[str, Any]:
    """Check `path` (`check_import_path`), then import it; return the module's name and the object, or None.

    `key` names the config key in messages; `error` is raised for a path refused or a module
    that does not import.
    """
    module_name, attr = check_import_path(path, key, example, colon, error, enforce)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{key} {path!r}: module {module_name!r} cannot be imported ({exc})") from None
    return module_name, getattr(module, attr, None)


def _under(module_name: str, prefixes: Sequence[str]) -> bool:
    return any(module_name == p or module_name.startswith(p.rstrip(".") + ".") for p in prefixes)


def takes_positional(fn: Callable[..., Any], n: int) -> bool:
    """Whether `fn` can be called with `n` positional arguments (its signature binds them)."""
    try:
        inspect.signature(fn).bind(*range(n))
    except (TypeError, ValueError):
        return False
    return True
