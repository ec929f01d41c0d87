"""The prepared table shared between processes through its memory-mapped Arrow cache (tunedag.shared_table)."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tunedag.config import DataConfig
from tunedag.data import _META_KEY, SPLIT, file_md5, load_prepared, prepare, save_prepared
from tunedag.errors import DataError
from tunedag.shared_table import SOURCE_MD5, cache_path, read_shared

ROOT = Path(__file__).resolve().parents[2]


def _raw(rows: int, seed: int = 0, numeric: int = 4) -> pd.DataFrame:
    """Numeric columns (one with missing values, one integer), categorical strings (with missing values), a text target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(numeric)})
    frame.loc[rng.random(rows) < 0.1, "x1"] = np.nan
    frame["count"] = rng.integers(0, 50, size=rows)
    levels = np.array(["red", "green", "blue", None], dtype=object)
    frame["color"] = levels[rng.integers(0, 4, size=rows)]
    frame["size"] = np.array(["S", "M", "L"], dtype=object)[rng.integers(0, 3, size=rows)]
    frame["label"] = np.where(frame["x0"] + rng.normal(scale=0.5, size=rows) > 0, "yes", "no")
    return frame


def _save(path: Path, rows: int = 300, seed: int = 0, numeric: int = 4) -> None:
    cfg = DataConfig(source="synthetic", task="classification", target="label")
    save_prepared(prepare(_raw(rows, seed, numeric), "label", cfg, seed, "test"), path)


def _parquet_frame(path: Path) -> pd.DataFrame:
    """What load_prepared returned before the cache: the Parquet read into pandas, categorical features as object."""
    table = pq.read_table(path)
    frame = table.to_pandas()
    for col in json.loads(table.schema.metadata[_META_KEY])["categorical"]:
        frame[col] = frame[col].astype(object)
    return frame


def _mapping(path: Path, pid: str = "self") -> list[tuple[int, int, dict[str, int]]]:
    """The address ranges at which process `pid` maps `path`, each with its smaps counters (kB)."""
    ranges, current = [], None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5:  # a mapping's header line: range, perms, offset, dev, inode, [path]
            current = None
            if head[-1] == str(path):
                start, end = (int(x, 16) for x in head[0].split("-"))
                current = (start, end, {})
                ranges.append(current)
        elif current is not None and line.endswith(" kB"):
            current[2][head[0].rstrip(":")] = int(head[1])
    return ranges


def test_frame_from_the_map_equals_the_parquets(tmp_path: Path) -> None:
    path = tmp_path / "dataset.parquet"
    _save(path)

    frame, meta = read_shared(path, file_md5(path), _META_KEY)

    expected = _parquet_frame(path)
    pd.testing.assert_frame_equal(frame, expected)
    assert meta["categorical"] == ["color", "size"] and meta["target"] == "label"
    assert frame["color"].dtype == object and frame["size"].dtype == object
    assert frame["color"].isna().sum() > 0 and frame["x1"].isna().sum() > 0  # missing values survive both ways
    assert frame["count"].dtype == expected["count"].dtype


def test_numeric_columns_point_into_the_mapped_file(tmp_path: Path) -> None:
    path = tmp_path / "dataset.parquet"
    _save(path, rows=20_000)
    table_bytes = pq.read_table(path).nbytes
    allocated = pa.total_allocated_bytes()

    prep = load_prepared(path, file_md5(path))
    assert pa.total_allocated_bytes() - allocated < 0.05 * table_bytes  # Arrow allocated nothing for the columns
    prep.xy("train", "val")  # what a trial does: must not consolidate the cached frame's columns into a copy

    ranges = _mapping(cache_path(path).resolve())
    assert ranges, "the Arrow cache is not memory-mapped"
    for col in ("x0", "x1", "x2", "x3", "count"):
        values = prep.frame[col].to_numpy()
        address = values.__array_interface__["data"][0]
        assert any(start <= address < end for start, end, _ in ranges), f"{col} is a copy, not a view of the map"
        assert not values.flags.owndata and not values.flags.writeable


@pytest.mark.slow
def test_two_processes_share_the_tables_pages(tmp_path: Path) -> None:
    """Both processes hold the table at once and have read it: what it adds to their PSS sums to about one copy."""
    path, tiny = tmp_path / "dataset.parquet", tmp_path / "tiny.parquet"
    _save(path, rows=200_000, numeric=20)
    _save(tiny, rows=100)
    for table in (path, tiny):
        read_shared(table, file_md5(table), _META_KEY)  # the caches, built here; the frames are let go at once
    gc.collect()
    holder = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import numpy as np
        from tunedag.data import file_md5, load_prepared
        def pss():
            return next(int(x.split()[1]) for x in Path("/proc/self/smaps_rollup").read_text().splitlines() if x.startswith("Pss:"))
        path, tiny = Path({str(path)!r}), Path({str(tiny)!r})
        load_prepared(tiny, file_md5(tiny)).xy("train")  # the code a first load imports, before the baseline
        before = pss()
        prep = load_prepared(path, file_md5(path))
        for col in prep.numeric:
            np.add.reduce(prep.frame[col].to_numpy())  # read every numeric page
        print(before, flush=True)
        sys.stdin.readline()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    try:
        before = [int(proc.stdout.readline()) for proc in procs]  # both hold the table from here on
        added_kb = sum(_pss_kb(proc.pid) - kb for proc, kb in zip(procs, before))
        cache = cache_path(path).resolve()
        held = [[counters for _, _, counters in _mapping(cache, str(proc.pid))] for proc in procs]
        numeric_kb = 200_000 * 21 * 8 / 1024
        for counters in held:
            assert sum(c["Rss"] for c in counters) > 0.9 * numeric_kb  # each process has read the numeric columns
        pss = sum(c["Pss"] for counters in held for c in counters)
        rss = sum(c["Rss"] for counters in held for c in counters)
        assert pss < 0.6 * rss  # the mapped pages are counted once between the two, not once per process
        assert added_kb < 1.5 * cache.stat().st_size / 1024  # and no process made its own copy of the columns
    finally:
        for proc in procs:
            proc.communicate("\n", timeout=60)
    assert [proc.returncode for proc in procs] == [0, 0]


def _pss_kb(pid: int) -> int:
    return next(int(x.split()[1]) for x in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines() if x.startswith("Pss:"))


def test_a_changed_parquet_rebuilds_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "dataset.parquet"
    _save(path, seed=0)
    read_shared(path, file_md5(path), _META_KEY)
    stale = cache_path(path).read_bytes()

    _save(path, seed=1)  # new data: the cache of seed 0 must never be read for it
    frame, _ = read_shared(path, file_md5(path), _META_KEY)
    pd.testing.assert_frame_equal(frame, _parquet_frame(path))

    cache_path(path).write_bytes(stale)  # a stale cache put back (say a restored backup): still not read
    frame, _ = read_shared(path, file_md5(path), _META_KEY)
    pd.testing.assert_frame_equal(frame, _parquet_frame(path))
    recorded = ipc.open_file(pa.memory_map(str(cache_path(path)))).schema.metadata[SOURCE_MD5].decode()
    assert recorded == file_md5(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda cache: cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2]),
        lambda cache: cache.write_bytes(np.random.default_rng(3).bytes(4096)),
        lambda cache: cache.write_bytes(b""),
    ],
    ids=["truncated", "random-bytes", "empty"],
)
def test_a_damaged_cache_is_rebuilt_naming_the_file(tmp_path: Path, damage, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "dataset.parquet"
    _save(path)
    read_shared(path, file_md5(path), _META_KEY)
    damage(cache_path(path))

    with caplog.at_level(logging.WARNING, logger="tunedag.shared_table"):
        frame, _ = read_shared(path, file_md5(path), _META_KEY)

    pd.testing.assert_frame_equal(frame, _parquet_frame(path))
    assert [r.getMessage() for r in caplog.records if str(cache_path(path)) in r.getMessage() and "rebuilt" in r.getMessage()]
    assert "Traceback" not in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache_path(path).name, "dataset.parquet"]  # no temporary file


def test_a_cache_that_cannot_be_written_leaves_the_frame_in_memory(tmp_path: Path, monkeypatch, caplog) -> None:
    path = tmp_path / "dataset.parquet"
    _save(path)

    def refuse(*_: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tunedag.shared_table.os.replace", refuse)
    with caplog.at_level(logging.WARNING, logger="tunedag.shared_table"):
        frame, _ = read_shared(path, file_md5(path), _META_KEY)

    pd.testing.assert_frame_equal(frame, _parquet_frame(path))
    assert str(cache_path(path)) in caplog.text and "cannot be written" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.parquet"]


def test_a_parquet_tunedag_did_not_write_is_refused_and_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "dataset.parquet"
    pd.DataFrame({"x": [1.0, 2.0], SPLIT: ["train", "test"]}).to_parquet(path)

    with pytest.raises(DataError, match="not made by tunedag") as info:
        read_shared(path, file_md5(path), _META_KEY)

    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not cache_path(path).exists()


def test_copies_of_one_parquet_map_one_cache_in_the_hosts_folder(tmp_path: Path, monkeypatch) -> None:
    """As Dask workers do, each with its own copy of the shipped Parquet: one cache, named by content, in the host's folder."""
    first, second, host = tmp_path / "worker-0" / "0.parquet", tmp_path / "worker-1" / "0.parquet", tmp_path / "tables"
    _save(first, rows=5_000)
    second.parent.mkdir()
    second.write_bytes(first.read_bytes())
    monkeypatch.setenv("TUNEDAG_TABLE_CACHE_DIR", str(host))

    frames = [read_shared(path, file_md5(path), _META_KEY)[0] for path in (first, second)]

    assert sorted(p.name for p in host.iterdir()) == [f"{file_md5(first)}.arrow"]
    assert not cache_path(first).exists() and not cache_path(second).exists()  # nothing beside the copies
    ranges = _mapping((host / f"{file_md5(first)}.arrow").resolve())
    for frame in frames:
        pd.testing.assert_frame_equal(frame, _parquet_frame(first))
        address = frame["x0"].to_numpy().__array_interface__["data"][0]
        assert any(start <= address < end for start, end, _ in ranges)


def test_a_build_killed_mid_write_leaves_nothing_after_the_next_build(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    _save(path)
    cache = cache_path(path, file_md5(path))
    stale = cache.with_name(f"{cache.name}.999999999.tmp")  # what a builder killed while writing leaves
    stale.write_bytes(b"half an Arrow file")

    frame, _ = read_shared(path, file_md5(path), _META_KEY)

    assert not stale.exists() and cache.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, cache.name])
    pd.testing.assert_frame_equal(frame, _parquet_frame(path))
