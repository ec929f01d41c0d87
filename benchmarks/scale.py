"""Flat cost at scale: a 5,000-trial study of the trivial objective through the full tune flow.

Run from the repository root:  python benchmarks/scale.py [--trials 5000] [--executor process]

The objective is overhead.py's trivial one (evaluate of SpinClassifier(cost 0) on iris), the
sampler RandomSampler(seed 42), parallelism 1. It runs the same trials twice: a bare Optuna loop
in memory, then `flows.tune.run`. The pipeline's overhead of trial i is its completion interval
minus the bare loop's interval for trial i, so the sampler's and Optuna's own growth with the
study's length (in both) is taken out; the table compares the first and the last 100 trials.
Peak memory is the largest resident set of this process (the flow) and of its largest child
(a trial worker or Prefect's temporary server), from getrusage.
"""

from __future__ import annotations

import argparse
import atexit
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna  # noqa: E402
import overhead  # noqa: E402  (sets PYTHONPATH for the workers too)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--window", type=int, default=100, help="trials compared at each end (default 100)")
    parser.add_argument("--executor", default="process", choices=("process", "thread"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tunedag-scale-")).resolve()
    atexit.register(shutil.rmtree, workdir, True)
    overhead.isolate(workdir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from tunedag.config import load_config

    started = time.perf_counter()
    cfg = load_config(
        overhead.write_config(workdir, "scale", trials=args.trials, seed=args.seed, cost_ms=0.0, executor=args.executor)
    )
    overhead.run_prepare(workdir / "scale/params.yaml")
    layers = overhead.Layers(cfg, workdir)
    bare = overhead.optuna_layer("bare Optuna (memory)", cfg, lambda t, p: layers.objective(p), args.trials)
    pipe, startup = overhead.pipeline_layer(cfg)
    n, w = min(len(bare.per_trial_ms), len(pipe.per_trial_ms)), args.window
    over = [p - b for p, b in zip(pipe.per_trial_ms[:n], bare.per_trial_ms[:n])]
    flow_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\n{overhead.environment()}")
    print(
        f"{args.trials} trials, trivial objective, RandomSampler(seed={args.seed}), parallelism 1, executor {args.executor}; "
        f"complete trials in the study: {len(pipe.per_trial_ms)}"
    )
    head = f"{'ms per trial (mean)':<34} {'first ' + str(w):>10} {'last ' + str(w):>10} {'last/first':>10}"
    print(head + "\n" + "-" * len(head))
    for name, series in (
        ("bare Optuna interval", bare.per_trial_ms),
        ("pipeline interval", pipe.per_trial_ms),
        ("pipeline overhead (difference)", over),
    ):
        first, last = mean(series[:w]), mean(series[n - w : n])
        print(f"{name:<34} {first:>10.2f} {last:>10.2f} {last / first:>10.2f}")
    ratio = mean(over[n - w : n]) / mean(over[:w])
    print(f"overhead last {w} / first {w}: {ratio:.2f}x (target <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    print(
        f"pipeline p50 / p95 over all trials: {overhead.percentile(pipe.per_trial_ms, 50):.1f} / "
        f"{overhead.percentile(pipe.per_trial_ms, 95):.1f} ms; start-up {startup:.1f} s; flow run {pipe.total_s:.0f} s"
    )
    print(f"peak resident memory: flow process {flow_mb:.0f} MB, largest child process {child_mb:.0f} MB")
    print(f"whole benchmark: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
