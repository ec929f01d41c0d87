"""The prepared table shared between a machine's processes: an Arrow IPC file beside the Parquet, memory-mapped.

The Parquet file (`paths.prepared`) stays the source of truth and the data version (its MD5). `read_shared` derives
from it an uncompressed Arrow IPC file, `cache_path(parquet)`, which every process on the machine maps: the pages of
its numeric columns (and of its string columns other than the categorical features) are the OS's page cache, held
once however many worker processes read them, and pandas wraps them without a copy. Categorical features are
stored dictionary-encoded, so each process's object column is one pointer per row to a few shared strings.

Where the workers of a machine each read their own copy of the Parquet (Dask workers, each with the file shipped to
its own folder), `TUNEDAG_TABLE_CACHE_DIR` names one folder of that machine for the caches, named by the Parquet's MD5,
so that they still map one cache; the Dask runner sets it to the host's Dask scratch space.

The cache records the MD5 of the Parquet bytes it was derived from; a cache whose record differs from the Parquet's
MD5 (stale), or that cannot be read (truncated, corrupt), is rebuilt before use, under a lock on the cache's folder
so that concurrent workers build it once. Only this module writes or replaces it, atomically. Where it cannot be
written (a read-only folder), the table is read from the Parquet into this process's memory instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from tunedag.errors import DataError

SOURCE_MD5 = b"tunedag.parquet_md5"  # in the cache's schema metadata: the MD5 of the Parquet bytes it was derived from
CACHE_DIR_ENV = "TUNEDAG_TABLE_CACHE_DIR"
_log = logging.getLogger(__name__)


def cache_path(parquet: Path, parquet_md5: str = "") -> Path:
    """Where the Arrow cache of `parquet` (whose bytes have MD5 `parquet_md5`) lives: beside it, hidden
    (`data/prepared/.dataset.parquet.arrow`), or `<md5>.arrow` in the folder `TUNEDAG_TABLE_CACHE_DIR` names."""
    folder = os.environ.get(CACHE_DIR_ENV)
    if folder and parquet_md5:
        return Path(folder) / f"{parquet_md5}.arrow"
    return parquet.with_name(f".{parquet.name}.arrow")


def read_shared(parquet: Path, parquet_md5: str, meta_key: bytes) -> tuple[pd.DataFrame, dict]:
    """The prepared frame of `parquet` (whose bytes have MD5 `parquet_md5`) and its tunedag metadata (under `meta_key`).

    Numeric and string columns point into the memory-mapped cache (read-only); categorical features (the metadata's
    `categorical`) are object columns. The frame equals `pq.read_table(parquet).to_pandas()` with those columns as object.
    Raises DataError, naming the file, for a Parquet that is unreadable or lacks tunedag's metadata.
    """
    cache = cache_path(parquet, parquet_md5)
    table = _mapped(cache, parquet_md5)
    if table is None:
        with _locked(cache.parent):  # one builder per machine; the others wait, then map what it wrote
            table = _mapped(cache, parquet_md5, quiet=False) or _build(parquet, meta_key)
    meta = json.loads(table.schema.metadata[meta_key])
    return to_frame(table, meta["categorical"]), meta


def to_frame(table: pa.Table, categorical: list[str]) -> pd.DataFrame:
    """A pandas frame over `table`'s buffers where the types allow, with the `categorical` columns as object.

    `split_blocks=True` keeps one block per column: without it, columns of one dtype are copied into one 2-D block."""
    frame = table.to_pandas(split_blocks=True)
    for col in categorical:
        frame[col] = frame[col].astype(object)
    return frame


def _mapped(cache: Path, parquet_md5: str, quiet: bool = True) -> pa.Table | None:
    """The cache's table, memory-mapped, if it exists, is readable and was derived from the Parquet bytes `parquet_md5`."""
    if not cache.is_file():
        return None
    try:
        reader = ipc.open_file(pa.memory_map(str(cache)))
        recorded = (reader.schema.metadata or {}).get(SOURCE_MD5, b"").decode()
        if recorded != parquet_md5:
            return None
        table = reader.read_all()
        table.validate()
        return table
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        if not quiet:
            _log.warning("Arrow cache %s of the prepared data is unreadable (%s); it is rebuilt from the Parquet", cache, exc)
        return None


def _build(parquet: Path, meta_key: bytes) -> pa.Table:
    """Derive the cache from the Parquet's bytes, write it atomically and map it; the table in memory if it cannot be written."""
    try:
        with open(parquet, "rb") as fh:  # hash and parse one open file, so the recorded MD5 is of the bytes parsed
            digest = hashlib.file_digest(fh, "md5").hexdigest()
            fh.seek(0)
            table = pq.read_table(fh)
        meta = json.loads(table.schema.metadata[meta_key])
    except (pa.ArrowException, OSError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"Prepared dataset {parquet} (paths.prepared) is unreadable or not made by tunedag: {exc}") from None
    derived = _derive(table, meta["categorical"], digest)
    del table
    cache = cache_path(parquet, digest)
    for stale in cache.parent.glob(f"{cache.name}.*.tmp"):  # a builder killed mid-write: builds run under the lock only
        stale.unlink(missing_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, derived.schema) as writer:
            writer.write_table(derived)
        os.replace(tmp, cache)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        _log.warning("Arrow cache %s cannot be written (%s); this process holds its own copy of the prepared data", cache, exc)
        return derived
    del derived
    pa.default_memory_pool().release_unused()  # a long-lived worker keeps only the map, not the allocator's cache of the build
    mapped = _mapped(cache, digest, quiet=False)
    if mapped is None:
        raise DataError(
            f"Arrow cache {cache} of the prepared dataset {parquet} (paths.prepared) cannot be read back right after it was "
            "written; check the disk of that folder, delete the file, and run again."
        )
    return mapped


def _derive(table: pa.Table, categorical: list[str], digest: str) -> pa.Table:
    """The cache's table: float nulls as NaN (what pandas shows anyway; no validity bitmap, so pandas needs no copy),
    categorical string columns dictionary-encoded, and the Parquet's MD5 in the metadata."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        if field.name in categorical and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            column = column.dictionary_encode()
        elif pa.types.is_floating(field.type) and column.null_count:
            column = pc.fill_null(column, np.nan)
        columns.append(column.combine_chunks())  # one chunk a column: a chunked column would be copied into one array
    return pa.table(columns, names=table.column_names).replace_schema_metadata(
        {**(table.schema.metadata or {}), SOURCE_MD5: digest.encode()}
    )


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive `flock` on the cache's folder (no lock file to leave behind), held while the cache is built.

    A folder that cannot be made or opened is not locked: writing the cache there fails the same way, and is said."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
