"""Integrity of DVC-tracked inputs: a file whose bytes differ from DVC's record is refused.

DVC records the MD5 of every file it tracks (for one file, the plain MD5 of its bytes):
in `<file>.dvc` beside a file added with `dvc add`, and under `outs` of the stage that writes
it in `dvc.lock`. This module reads those YAML files directly (no DVC import, no repository
lock) and compares the record with the file.

When a difference is corruption:

- A `.dvc` record (`dvc add`, `dvc import`): no stage writes the file, so any difference is
  corruption or an edit DVC never recorded. Refused.
- A `dvc.lock` output: the stage that writes the file can legitimately have re-run since its
  entry was written. `tunedag run` and `tunedag prepare` rebuild the
  prepared dataset without touching `dvc.lock`; `--set` overrides change a stage's inputs;
  `dvc repro` runs a stage before it writes that stage's new entry. In each of these the
  stage's inputs differ from the ones its entry records. So the file is judged only while
  its stage is *in sync* with the entry: every dependency in the entry still has its recorded
  MD5, and every recorded parameter still has its recorded value in the configuration that
  runs now (overrides included). The stages are seeded and deterministic, so a stage in sync
  reproduces its recorded output, and a different file is corruption. A stale stage gives no
  verdict ("stale"): the next `dvc repro` records the new file.
  (Modification times are not used: a byte flipped by a copy or another program updates the
  file's mtime just as a legitimate rebuild does.)

Limits: dependencies are hashed only when the output differs from its record, so the common
case costs one MD5 of the file. A directory dependency is hashed as DVC 3 does (the MD5 of
its sorted listing) without `.dvcignore` patterns, so with such patterns the stage reads as
stale (no verdict, never a false alarm). A file inside a tracked directory is checked when
the directory's listing is in the local cache (`.dvc/cache`). Records written by DVC 2 (no
`hash: md5`) hashed text files with CRLF turned into LF; both forms are accepted for them.
A library upgrade that changes the bytes the prepare stage writes for the same inputs reads
as corruption until `dvc repro` records the new file.

Only regular files are read (a symlink is followed only to a regular file): a FIFO, a device
or a socket among the dependencies is refused, naming it, since reading one can block forever.
Hashing the dependencies is bounded (`HASH_MAX_BYTES` a file, `HASH_MAX_S` in all); past a
bound the stage gives no verdict ("stale", with a warning) rather than keep the command waiting.

The prepared dataset carries its own record besides: `seal_prepared` stores an MD5 of its
content in the file's metadata when the prepare stage writes it, and `verify_prepared` (run
before every stage that reads the file) refuses a file whose content no longer matches it,
whatever DVC's records say or whether they are stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from tunedag.data import file_md5
from tunedag.errors import TunedagError

Verdict = Literal["match", "untracked", "stale", "missing"]
DEFAULT_PARAMS_FILE = "params.yaml"
HASH_MAX_BYTES = 8 << 30  # a dependency larger than this is not hashed (the stage reads as stale)
HASH_MAX_S = 120.0  # nor are the dependencies of one stage past this many seconds
_log = logging.getLogger(__name__)


class _Unhashable(Exception):
    """A dependency over a hashing bound: its stage gives no verdict."""


@dataclass(frozen=True)
class Record:
    """What DVC recorded for one file: its MD5, the record file, and the stage that writes it."""

    md5: str
    source: Path  # the `.dvc` file or `dvc.lock` holding the record
    stage: str | None  # the dvc.lock stage writing the file; None for a `.dvc` record
    legacy: bool  # written by DVC 2 (text files hashed with CRLF as LF)


def verify_tracked(path: Path | str, current: Any = None, md5: str | None = None) -> Verdict:
    """Raise TunedagError if DVC-tracked `path` differs from its record and the difference is corruption.

    Args:
        path: the file to check.
        current: the configuration that runs now (a pydantic model or plain mapping of
            params.yaml's sections), for comparing a stage's recorded parameters; None
            reads params.yaml beside dvc.lock.
        md5: the file's MD5 when the caller has it already.

    Returns:
        "match" (the file is what DVC recorded), "untracked" (no usable record), "stale"
        (the stage writing it has other inputs now, so its record says nothing about it), or
        "missing" (no such file: the caller's loader reports that in its own words).
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    record = find_record(path)
    if record is None:
        return "untracked"
    actual = md5 or _md5(path)
    if actual == record.md5 or (record.legacy and _md5(path, crlf_to_lf=True) == record.md5):
        return "match"
    if record.stage is not None and not stage_in_sync(record.source, record.stage, current):
        return "stale"
    raise TunedagError(_mismatch_message(path, record, actual))


def _mismatch_message(path: Path, record: Record, actual: str) -> str:
    if record.stage is None:
        where, record_fix = str(_shown(record.source)), f"`dvc add {path}`"
    else:
        where = f"{_shown(record.source)} (outs of stage {record.stage!r}, whose inputs are unchanged)"
        record_fix = f"`dvc commit --force {record.stage}`"
    return (
        f"{path} does not match its DVC record in {where}: its MD5 is {actual}, the record says {record.md5}. "
        f"The file is corrupted or was changed without DVC; nothing was run on it. Restore the recorded version "
        f"with `dvc checkout --force {path}` (`dvc pull {path}` if the cache lacks it), or, if the change is "
        f"deliberate, record it with {record_fix}."
    )


def find_record(path: Path | str) -> Record | None:
    """DVC's record for `path`: its `.dvc` file (or a tracked parent folder's), else a dvc.lock output."""
    target = Path(path).resolve()
    root = _repo_root(target)
    if root is None:
        return None
    for tracked in [target, *target.parents]:
        if tracked == root:
            break
        dvcfile = tracked.with_name(tracked.name + ".dvc")
        if dvcfile.is_file():
            record = _record_in(dvcfile, _read_yaml(dvcfile).get("outs") or [], target, root, None)
            if record:
                return record
    for folder in [root, *reversed([p for p in target.parents if root in p.parents])]:
        lock = folder / "dvc.lock"
        if lock.is_file():
            for stage, entry in _stages(lock).items():
                record = _record_in(lock, entry.get("outs") or [], target, root, str(stage))
                if record:
                    return record
    return None


def stage_in_sync(lock: Path, stage: str, current: Any = None) -> bool:
    """Whether every dependency and parameter recorded for `stage` in `lock` still has its recorded value.

    A dependency over a hashing bound (`HASH_MAX_BYTES`, `HASH_MAX_S`) makes the stage read as
    out of sync, with a warning; one that is not a regular file is refused (TunedagError naming it).
    """
    entry = _stages(lock).get(stage, {})
    base = lock.parent
    deadline = time.monotonic() + HASH_MAX_S
    for dep in entry.get("deps") or []:
        try:
            if not _dep_unchanged(base / str(dep.get("path", "")), dep, deadline):
                return False
        except _Unhashable as exc:
            _log.warning("Stage %r of %s is not checked against its record: %s", stage, lock, exc)
            return False
    for params_file, recorded in (entry.get("params") or {}).items():
        values = _current_values(base / params_file, current if params_file == DEFAULT_PARAMS_FILE else None)
        for key, value in (recorded or {}).items():
            if not _same(value, _lookup(values, str(key))):
                return False
    return True


def dir_md5(folder: Path, deadline: float | None = None) -> str:
    """DVC 3's hash of a folder: the MD5 of its sorted JSON listing of relative paths and file MD5s, plus `.dir`.

    Reads regular files only (see `_regular`); `deadline` (time.monotonic) bounds the time spent.
    """
    entries = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in (".dvc", ".git")]
        for name in files:
            file = Path(top) / name
            entries.append({"md5": _bounded_md5(file, deadline), "relpath": file.relative_to(folder).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def _regular(path: Path) -> os.stat_result:
    """The stat of `path` (a symlink followed) if it is a regular file; TunedagError naming it otherwise."""
    try:
        info = path.stat()
    except OSError as exc:
        raise TunedagError(
            f"{path} cannot be read to check it against its DVC record ({exc.strerror}); remove it or make it a readable file."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(info.st_mode)
            else "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "not a regular file"
        )
        link = f" (a symlink to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise TunedagError(
            f"{path}{link} is {kind}; tunedag checks DVC-tracked inputs by reading their files and reads "
            "only regular files, so nothing was run. Remove it from the folder, or replace it with a regular file."
        )
    return info


def _bounded_md5(path: Path, deadline: float | None) -> str:
    """The MD5 of a regular file, within `HASH_MAX_BYTES` and before `deadline`, else _Unhashable."""
    info = _regular(path)
    if info.st_size > HASH_MAX_BYTES:
        raise _Unhashable(f"{path} holds {info.st_size} bytes, over the {HASH_MAX_BYTES} tunedag hashes")
    if deadline is None:
        return _md5(path)
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            if time.monotonic() > deadline:
                raise _Unhashable(f"hashing the stage's dependencies took over {HASH_MAX_S:.0f} s (at {path})")
    return digest.hexdigest()


def _record_in(source: Path, outs: list, target: Path, root: Path, stage: str | None) -> Record | None:
    for out in outs:
        if not isinstance(out, dict) or not out.get("path") or not out.get("md5"):
            continue
        out_path = (source.parent / str(out["path"])).resolve()
        legacy = out.get("hash") != "md5"
        if out_path == target:
            return Record(str(out["md5"]), source, stage, legacy)
        if out_path in target.parents and str(out["md5"]).endswith(".dir"):
            md5 = _listed_md5(root, str(out["md5"]), target.relative_to(out_path).as_posix())
            return Record(md5, source, stage, legacy) if md5 else None
    return None


def _listed_md5(root: Path, dir_hash: str, relpath: str) -> str | None:
    """A file's MD5 from a tracked folder's listing in the local DVC cache, if the listing is there."""
    for cache in (root / ".dvc" / "cache" / "files" / "md5", root / ".dvc" / "cache"):
        listing = cache / dir_hash[:2] / dir_hash[2:]
        if listing.is_file():
            try:
                entries = json.loads(listing.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                return None
            return next((e.get("md5") for e in entries if e.get("relpath") == relpath), None)
    return None


def _dep_unchanged(path: Path, dep: dict, deadline: float | None = None) -> bool:
    recorded = dep.get("md5")
    if not recorded or dep.get("hash") not in (None, "md5"):
        return False  # a dependency DVC hashes otherwise (a URL's etag): no way to tell here
    if str(recorded).endswith(".dir"):
        return path.is_dir() and dir_md5(path, deadline) == recorded
    if not path.exists():
        return False
    return _bounded_md5(path, deadline) == recorded or (dep.get("hash") is None and _md5(path, crlf_to_lf=True) == recorded)


def _current_values(params_file: Path, current: Any) -> Any:
    if current is None:
        return _read_yaml(params_file) if params_file.is_file() else {}
    if hasattr(current, "model_dump"):
        current = current.model_dump(mode="python")
    return _plain(current)


def _lookup(values: Any, dotted: str) -> Any:
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def _same(recorded: Any, current: Any) -> bool:
    """Recorded equals current; a recorded section may omit keys the running config fills with defaults."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        return all(k in current and _same(v, current[k]) for k, v in recorded.items())
    if isinstance(recorded, list) and isinstance(current, list):
        return len(recorded) == len(current) and all(_same(a, b) for a, b in zip(recorded, current))
    return current is not _MISSING and recorded == current


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return Path(value).as_posix()
    return value


def _stages(lock: Path) -> dict[str, dict]:
    stages = _read_yaml(lock).get("stages")
    return {str(k): v for k, v in stages.items() if isinstance(v, dict)} if isinstance(stages, dict) else {}


def _repo_root(target: Path) -> Path | None:
    return next((p for p in target.parents if (p / ".dvc").is_dir()), None)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TunedagError(
            f"DVC file {path} cannot be read ({' '.join(str(exc).split())}); "
            "restore it from git (git checkout -- <file>) or remove it."
        ) from None
    return data if isinstance(data, dict) else {}


def _md5(path: Path, crlf_to_lf: bool = False) -> str:
    if not crlf_to_lf:
        return file_md5(path)
    return hashlib.md5(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def _shown(path: Path) -> Path:
    """`path` relative to the working directory when it lies under it (as the user typed paths)."""
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


SEAL_KEY = b"tunedag.content_md5"  # in the prepared file's Parquet metadata: the MD5 of its content when prepare wrote it


def seal_prepared(path: Path) -> str:
    """Record the MD5 of the prepared file's content in its own metadata (rewritten atomically); return it.

    The prepare stage calls this once it has written the file; `verify_prepared` compares.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    digest = _content_md5(table)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), SEAL_KEY: digest.encode()}), tmp)
    os.replace(tmp, path)
    return digest


def verify_prepared(cfg: Any) -> str:
    """Refuse a prepared dataset (`paths.prepared`) that is not what the prepare stage wrote; return its data version (MD5).

    Run before every stage that reads the file. Two records are compared, each when present:
    DVC's (`verify_tracked`), and the content MD5 the prepare stage sealed into the file, which
    catches a changed file whatever else changed (a stale dvc.lock entry included). A file
    without a seal (written by hand or by an older tunedag) is checked against DVC's record only.
    """
    from tunedag.data import require_prepared

    path = Path(cfg.paths.prepared)
    require_prepared(path)
    version = file_md5(path)
    verify_tracked(path, cfg, md5=version)
    _check_seal(path.resolve(), version)
    return version


@lru_cache(maxsize=8)
def _check_seal(path: Path, version: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TunedagError(
            f"Prepared dataset {_shown(path)} (paths.prepared) is unreadable ({' '.join(str(exc).split())}); "
            "it is corrupted: run the prepare stage again (dvc repro prepare)."
        ) from None
    sealed = (table.schema.metadata or {}).get(SEAL_KEY)
    if sealed is None:
        _log.warning("%s (paths.prepared) has no content record of tunedag's; only its DVC record is checked", path)
        return
    actual = _content_md5(table)
    if actual != sealed.decode():
        raise TunedagError(
            f"Prepared dataset {_shown(path)} (paths.prepared) was changed after the prepare stage wrote it: "
            f"its content MD5 is {actual}, the one recorded in the file at prepare time {sealed.decode()}. "
            "Nothing was run on it. Run the prepare stage again (dvc repro prepare, or tunedag prepare)."
        )


def _content_md5(table: Any) -> str:
    """The MD5 of a table's columns (names, types, values), independent of the file's encoding and of the seal."""
    import pandas as pd

    digest = hashlib.md5()
    for field, column in zip(table.schema, table.columns):  # column by column: one pandas copy of a column at a time
        digest.update(f"{field.name}\0{field.type}\0{len(column)}\0".encode())
        digest.update(pd.util.hash_pandas_object(column.to_pandas(), index=False).to_numpy().tobytes())
    return digest.hexdigest()
