"""Files the stages hand to each other and to DVC, written atomically (never half-written)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON through a temporary file and a rename."""
    _atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path, key: str) -> Any:
    """Read a JSON file another stage wrote; `key` names the params.yaml key of its path."""
    from tunedag.errors import TunedagError

    if not path.is_file():
        raise TunedagError(f"{path} ({key}) is missing; run the stage that writes it first (dvc repro).")
    return json.loads(path.read_text(encoding="utf-8"))


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    _atomic_write(path, "\n".join(lines) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
