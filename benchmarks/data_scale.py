"""What the size of the prepared table costs: prepare time, per-trial overhead beyond the fit, memory per machine.

Run from the repository root:  python benchmarks/data_scale.py --rows 10000 100000 1000000

For each size, a table of `rows` x 20 feature columns (15 numeric, 5 categorical strings of 20 levels) and a
binary target is written as parquet and prepared in process (`tasks.data.prepare_dataset`, timed; it writes the
Parquet and its memory-mapped Arrow cache). Then, on worker processes (`process`) and on a Dask LocalCluster
(`dask`, the Parquet shipped once with `Runner.ship`), 2 workers run jobs that do what a trial does before its fit:
read the prepared table through `runners.base.local_path` and `tunedag.data.load_prepared`. The first job per
worker loads the table (cold); the next are what every later trial pays (warm). Last, each worker runs the data
part of a fit once: the train and validation rows (`Prepared.xy`) through tunedag's preprocessing
(impute, scale, one-hot) into the float matrix an estimator is fitted on. Columns:

  prepare s     reading the raw file, checks, split, writing and sealing the prepared parquet, writing the Arrow cache
  cold s        a worker's first job, loading the table (once per worker and study)
  warm ms       median submit-to-answer of the later jobs: the per-trial overhead beyond the fit
  table MB      the prepared table in memory, as Arrow holds it (`pyarrow.Table.nbytes` of the Parquet read whole)
  pandas MB     the same as a pandas frame with categoricals as object (`memory_usage(deep=True)`, each string counted per cell)
  machine MB    what holding the table adds to the machine: the rise of the workers' PSS (proportional set size,
                /proc/<pid>/smaps_rollup: a page mapped by both counts half in each), summed over the 2 workers,
                measured while both hold it and after each read every column, from after each loaded and read a
                100-row table (the code a first load imports is not the table's); dask: its trial processes only
  x table       machine MB / table MB (the issue asks at most 1.5)
  fit MB        the peak rise of one worker's resident memory during the data part of a fit (transient, per worker)
  Dask worker MB  resident memory of a Dask worker process (its copy of the shipped parquet is on disk), each
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRELOAD = ("tunedag.data", "benchmarks.data_scale")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def pss_mb(pid: int | str = "self") -> float:
    """A process's proportional set size: its private pages plus its share of each page it maps with others."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise KeyError("Pss")


def touch(path: str, version: str, hold_s: float = 0.0, warmup: tuple[str, str] | None = None) -> dict[str, float]:
    """A trial's work before its fit: the prepared table from this worker's copy; pid, PSS before, seconds.

    `warmup` (a tiny prepared table and its version) is loaded first, so that the code a first load imports is
    in the PSS before, not in what the table adds."""
    from runners.base import local_path
    from tunedag.data import load_prepared

    if warmup:
        read_all(load_prepared(local_path(warmup[0]), warmup[1]).frame)
    before = pss_mb() if warmup else 0.0  # reading smaps takes milliseconds: not in the warm jobs
    started = time.perf_counter()
    prep = load_prepared(local_path(path), version)
    seconds = time.perf_counter() - started
    if warmup:
        read_all(prep.frame)
    time.sleep(hold_s)  # so that the two first jobs land on the two workers
    return {"pid": os.getpid(), "pss_before": before, "seconds": seconds}


def read_all(frame: pd.DataFrame) -> None:
    """Read every page of every column without copying one (so a mapped table is paged into this process)."""
    for col in frame.columns:
        values = frame[col]
        np.add.reduce(values.to_numpy(), axis=None) if pd.api.types.is_numeric_dtype(values) else values.value_counts()


def fit_data(path: str, version: str, preprocess: dict) -> dict[str, float]:
    """The data part of a fit: train + validation rows through tunedag's preprocessing; the peak rise of resident memory."""
    from runners.base import local_path
    from tunedag.config import PreprocessConfig
    from tunedag.data import load_prepared
    from tunedag.estimators import build_model

    prep = load_prepared(local_path(path), version)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident size, to the current one
    resident = _status_kb("VmRSS")
    X, y = prep.xy("train", "val")
    model = build_model(
        "sklearn.linear_model.LogisticRegression", {}, {}, prep.numeric, prep.categorical, PreprocessConfig(**preprocess)
    )
    matrix = model.named_steps["preprocess"].fit_transform(X, y)
    peak = _status_kb("VmHWM")
    del X, y, matrix
    return {"pid": os.getpid(), "fit_mb": (peak - resident) / 1024}


def raw_table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(15)})
    levels = np.array([f"level_{i:02d}" for i in range(20)])
    for i in range(5):
        frame[f"c{i}"] = levels[rng.integers(0, 20, size=rows)]
    frame["target"] = (frame["x0"] + frame["x1"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return frame


def prepare_once(workdir: Path, rows: int):
    """Write the raw table, prepare it in process; the config, the seconds prepare took and the data version."""
    from tasks.data import prepare_dataset
    from tunedag.config import load_config
    from tunedag.data import file_md5, load_prepared, prepare, save_prepared

    raw = workdir / "data" / "raw.parquet"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw_table(rows).to_parquet(raw)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="file", path=str(raw.relative_to(workdir)), target="target", cv_folds=0)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    cfg = load_config(workdir / "params.yaml")
    started = time.perf_counter()
    summary = prepare_dataset.fn(cfg)
    seconds = time.perf_counter() - started
    tiny = workdir / "data" / "tiny.parquet"
    save_prepared(prepare(raw_table(100), "target", cfg.data, cfg.seed, "tiny"), tiny)
    load_prepared.cache_clear()  # the driver lets go of its map, so the workers' PSS shares it between them alone
    gc.collect()
    return cfg, seconds, summary["data_version"], (str(tiny), file_md5(tiny))


def table_sizes(path: Path) -> tuple[float, float]:
    """The prepared table's in-memory size in MB: as Arrow holds it, and as a pandas frame (deep), read without the map."""
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame = table.to_pandas()
    for col in json.loads(table.schema.metadata[b"tunedag"])["categorical"]:
        frame[col] = frame[col].astype(object)
    sizes = table.nbytes / 2**20, frame.memory_usage(deep=True).sum() / 2**20
    del table, frame
    gc.collect()
    return sizes


def measure(kind: str, path: Path, version: str, warm_jobs: int, preprocess: dict, warmup: tuple[str, str]) -> dict[str, float]:
    from benchmarks.data_scale import fit_data, touch  # by its module's name, not __main__'s, for the workers
    from runners import Limits, make_runner

    with make_runner(kind, 2, Limits(threads=1), PRELOAD) as runner:
        runner.ship(path)
        runner.ship(warmup[0])
        cold = [f.result() for f in [runner.submit(touch, str(path), version, 1.0, warmup) for _ in range(2)]]
        pids = {c["pid"] for c in cold}
        if len(pids) != 2:
            raise RuntimeError(f"the two first jobs ran in {len(pids)} worker(s), not 2; run again")
        warm = []
        for _ in range(warm_jobs):
            started = time.perf_counter()
            runner.submit(touch, str(path), version).result()
            warm.append(time.perf_counter() - started)
        machine = sum(pss_mb(c["pid"]) - c["pss_before"] for c in cold)  # both workers hold the table, all of it read
        fit = runner.submit(fit_data, str(path), version, preprocess).result()  # one at a time: a worker's own peak
        worker = 0.0
        if kind == "dask":
            import psutil

            worker = max(runner._client.run(lambda: psutil.Process().memory_info().rss / 2**20).values())
    return {
        "cold": max(c["seconds"] for c in cold),
        "warm_ms": statistics.median(warm) * 1000,
        "machine": machine,
        "fit": fit["fit_mb"],
        "worker": worker,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", choices=("process", "dask"), default=["process", "dask"])
    parser.add_argument("--warm-jobs", type=int, default=10)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    print(f"{os.cpu_count()} cores; 20 feature columns (15 numeric, 5 categorical); 2 workers\n")
    print(
        f"{'rows':>9} {'runner':<8} {'prepare s':>9} {'cold s':>7} {'warm ms':>8} {'table MB':>9} {'pandas MB':>10} "
        f"{'machine MB':>11} {'x table':>8} {'fit MB':>7} {'Dask worker MB':>15}"
    )
    for rows in args.rows:
        workdir = Path(tempfile.mkdtemp(prefix=f"tunedag-scale-{rows}-"))
        os.chdir(workdir)  # the config's paths are below the project folder
        cfg, prepare_s, version, warmup = prepare_once(workdir, rows)
        path = cfg.paths.prepared.resolve()
        table_mb, pandas_mb = table_sizes(path)
        for kind in args.kinds:
            m = measure(kind, path, version, args.warm_jobs, cfg.model.preprocess.model_dump(), warmup)
            print(
                f"{rows:>9} {kind:<8} {prepare_s:>9.2f} {m['cold']:>7.2f} {m['warm_ms']:>8.1f} {table_mb:>9.0f} {pandas_mb:>10.0f} "
                f"{m['machine']:>11.0f} {m['machine'] / table_mb:>8.2f} {m['fit']:>7.0f} {m['worker'] or float('nan'):>15.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
