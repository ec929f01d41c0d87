"""Files the stages hand to each other and to DVC, written atomically (never half-written)."""

from __future__ import annotations

import errno
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


# The errors of a disk or store that stopped accepting writes: full, over quota, over the file-size limit, read-only.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
SQLITE_WRITE_ERRORS = ("database or disk is full", "attempt to write a readonly database")


def write_failure(exc: BaseException) -> str | None:
    """Why `exc` means that the disk or the store stopped accepting writes, or None when it does not.

    The cause is looked for along the exception's chain: MLflow re-raises a failed skops write as
    "skops does not support custom functions ..." from the OSError, and SQLite's "database or disk is
    full" arrives inside MLflow's and SQLAlchemy's exceptions. The answer names the errno and the file.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            where = f" writing {exc.filename}" if exc.filename else ""
            return f"{os.strerror(exc.errno)} ({errno.errorcode[exc.errno]}){where}"
        text = str(exc)
        for message in SQLITE_WRITE_ERRORS:
            if message in text:
                return f"the SQLite store refused a write: {message}"
        exc = exc.__cause__ or exc.__context__
    return None
