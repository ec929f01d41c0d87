"""What the size of the prepared table costs: prepare time, per-trial overhead beyond the fit, memory per worker.

Run from the repository root:  python benchmarks/data_scale.py --rows 10000 100000 1000000

For each size, a table of `rows` x 20 feature columns (15 numeric, 5 categorical strings of 20 levels) and a
binary target is written as parquet and prepared in process (`tasks.data.prepare_dataset`, timed). Then, on
worker processes (`process`) and on a Dask LocalCluster (`dask`, the table shipped once with `Runner.ship`),
2 workers run jobs that do what a trial does before its fit: read the prepared table through
`runners.base.local_path` and `tunedag.data.load_prepared`. The first job per worker loads the table (cold);
the next are what every later trial pays (warm). Columns:

  prepare s    reading the raw file, checks, split, writing and sealing the prepared parquet
  cold s       a worker's first job, loading the table (once per worker and study)
  warm ms      median submit-to-answer of the later jobs: the per-trial overhead beyond the fit
  table MB     the prepared frame in memory (pandas, deep)
  job peak MB  the trial process's peak resident memory (it holds one copy of the table)
  worker MB    the Dask worker process's resident memory (it holds the shipped parquet bytes)
"""

from __future__ import annotations

import argparse
import os
import resource
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


def touch(path: str, version: str) -> tuple[int, float, float]:
    """A trial's work before its fit: the prepared table from this worker's copy; rows, seconds, peak RSS in MB."""
    from runners.base import local_path
    from tunedag.data import load_prepared

    started = time.perf_counter()
    rows = len(load_prepared(local_path(path), version).frame)
    return rows, time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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

    raw = workdir / "data" / "raw.parquet"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw_table(rows).to_parquet(raw)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="file", path=str(raw.relative_to(workdir)), target="target", cv_folds=0)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    cfg = load_config(workdir / "params.yaml")
    started = time.perf_counter()
    summary = prepare_dataset.fn(cfg)
    return cfg, time.perf_counter() - started, summary["data_version"]


def measure(kind: str, path: Path, version: str, warm_jobs: int) -> dict[str, float]:
    from benchmarks.data_scale import touch  # by its module's name, not __main__'s, for the workers
    from runners import Limits, make_runner

    with make_runner(kind, 2, Limits(threads=1), PRELOAD) as runner:
        runner.ship(path)
        cold = [f.result() for f in [runner.submit(touch, str(path), version) for _ in range(2)]]
        warm = []
        for _ in range(warm_jobs):
            started = time.perf_counter()
            runner.submit(touch, str(path), version).result()
            warm.append(time.perf_counter() - started)
        peak = max(r[2] for r in [f.result() for f in [runner.submit(touch, str(path), version) for _ in range(2)]])
        worker = 0.0
        if kind == "dask":
            import psutil

            worker = max(runner._client.run(lambda: psutil.Process().memory_info().rss / 2**20).values())
    return {"cold": max(c[1] for c in cold), "warm_ms": statistics.median(warm) * 1000, "peak": peak, "worker": worker}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", choices=("process", "dask"), default=["process", "dask"])
    parser.add_argument("--warm-jobs", type=int, default=10)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    print(f"{os.cpu_count()} cores; 20 feature columns (15 numeric, 5 categorical); 2 workers\n")
    print(
        f"{'rows':>9} {'runner':<8} {'prepare s':>9} {'cold s':>7} {'warm ms':>8} {'table MB':>9} {'job peak MB':>12} {'worker MB':>10}"
    )
    for rows in args.rows:
        workdir = Path(tempfile.mkdtemp(prefix=f"tunedag-scale-{rows}-"))
        os.chdir(workdir)  # the config's paths are below the project folder
        cfg, prepare_s, version = prepare_once(workdir, rows)
        from tunedag.data import load_prepared

        table_mb = load_prepared(cfg.paths.prepared.resolve(), version).frame.memory_usage(deep=True).sum() / 2**20
        for kind in args.kinds:
            m = measure(kind, cfg.paths.prepared.resolve(), version, args.warm_jobs)
            print(
                f"{rows:>9} {kind:<8} {prepare_s:>9.2f} {m['cold']:>7.2f} {m['warm_ms']:>8.1f} {table_mb:>9.0f} "
                f"{m['peak']:>12.0f} {m['worker'] or float('nan'):>10.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
