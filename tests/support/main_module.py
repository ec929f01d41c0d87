"""A stand-in for the process's `__main__` module, as a command run by name or as a script leaves it."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest


def fake_main(monkeypatch: pytest.MonkeyPatch, name: str | None) -> None:
    """`__main__` for `python -m <name>`, or for a script when `name` is None, for the rest of the test."""
    main = types.ModuleType("__main__")
    main.__spec__ = importlib.machinery.ModuleSpec(name, None) if name else None
    monkeypatch.setitem(sys.modules, "__main__", main)
