"""Trials per second with parallelism 1 vs 2, through the real tune flow, in one run.

Run from the repository root:  python benchmarks/parallel.py --trials 12
                               python benchmarks/parallel.py --model torch --trials 12

Each mode runs `python -m flows.tune` on the same config (a seeded random search over
RandomForestClassifier sizes on synthetic data, about 1 s a trial on one core), with its own
fresh Optuna study, and is timed from its first trial's start to its last trial's end (Optuna's
timestamps), so process start-up and Prefect's temporary server are not counted. Modes:

  process x1   tune.executor process, parallelism 1 (the baseline)
  process x2   worker processes, parallelism 2, threads per trial capped at cores // 2
  thread x2    the same trials in 2 threads of one process (the GIL serialises the Python parts)
  dask x2      the trials on a Dask LocalCluster of 2 workers, each running them in its own trial process
               (runners/dask.py: the same limits as the worker processes); the cluster's start is not counted

`--modes` picks some (default: all but thread x2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import yaml

from studies.storage import build_storage

MODES = {
    "process x1": {"tune.executor": "process", "tune.parallelism": 1},
    "process x2": {"tune.executor": "process", "tune.parallelism": 2},
    "thread x2": {"tune.executor": "thread", "tune.parallelism": 2},
    "dask x2": {"tune.runner.kind": "dask", "tune.parallelism": 2},
}


def write_config(workdir: Path, trials: int, estimators: int, model: str, epochs: int = 30) -> Path:
    if model == "torch":  # the digits CNN of examples/torch_digits.yaml, without pruning or early stopping
        cfg = yaml.safe_load(Path("examples/torch_digits.yaml").read_text())
        cfg["model"]["fixed"].update(epochs=epochs, early_stopping_patience=None)
        cfg["tune"].update(pruner={"name": "none"}, fidelity={"kind": "none"}, enqueue=[], threads_per_trial=None)
    else:
        cfg = yaml.safe_load(Path("params.yaml").read_text())
        cfg["data"].update(
            source="synthetic",
            task="classification",
            cv_folds=0,
            synthetic={"n_samples": 4000, "n_features": 20, "n_informative": 10, "n_classes": 2, "noise": 0.1},
        )
        cfg["model"] = {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "fixed": {"n_jobs": 1, "n_estimators": estimators},
        }
        cfg["search_space"] = {
            "max_depth": {"type": "int", "low": 10, "high": 14},
            "min_samples_leaf": {"type": "int", "low": 1, "high": 3},
        }
    cfg["tune"].update(sampler={"name": "random"}, n_trials=trials, metric="accuracy")
    cfg["tracking"].update(uri=f"sqlite:///{workdir}/mlruns/mlflow.db", artifact_root=str(workdir / "mlruns" / "artifacts"))
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_mode(params: Path, workdir: Path, name: str, overrides: dict) -> tuple[int, float, float]:
    storage = workdir / f"{name.replace(' ', '_')}.journal"
    # Its own MLflow store too: a study finds the runs of an earlier one with its name and tells them again.
    sets = {**overrides, "tune.storage": str(storage), "tracking.uri": f"sqlite:///{storage.with_suffix('.db')}"}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    done = subprocess.run(
        [sys.executable, "-m", "flows.tune", "--params", str(params), *args], capture_output=True, text=True, cwd=workdir
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    (summary,) = build_storage(str(storage)).get_all_studies()
    trials = optuna.load_study(study_name=summary.study_name, storage=build_storage(str(storage))).get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    mean_fit = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials) / len(trials)
    return len(trials), (end - start).total_seconds(), mean_fit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--estimators", type=int, default=120, help="trees per forest (sets the trial length)")
    parser.add_argument(
        "--model",
        choices=("sklearn", "torch"),
        default="sklearn",
        help="sklearn: a random forest; torch: the digits CNN of examples/torch_digits.yaml",
    )
    parser.add_argument("--epochs", type=int, default=30, help="epochs a torch trial (30: the example config's)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["process x1", "process x2", "dask x2"])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tunedag-parallel-"))
    os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect"))
    params = write_config(workdir, args.trials, args.estimators, args.model, args.epochs)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
    )
    subprocess.run([sys.executable, "-m", "flows.prepare", "--params", str(params)], check=True, capture_output=True, cwd=workdir)
    rows = {name: run_mode(params, workdir, name, MODES[name]) for name in args.modes}
    base = rows["process x1"][0] / rows["process x1"][1]
    what = f"the digits CNN ({args.epochs} epochs)" if args.model == "torch" else f"RandomForest({args.estimators} trees)"
    print(f"\n{os.cpu_count()} cores; {args.trials} trials of {what} per mode; threads per trial: cores // parallelism\n")
    print(f"{'mode':<12} {'trials':>6} {'phase s':>8} {'trials/s':>9} {'speed-up':>9} {'s/trial (task)':>15}")
    for name, (n, phase, mean_fit) in rows.items():
        rate = n / phase
        print(f"{name:<12} {n:>6} {phase:>8.2f} {rate:>9.3f} {rate / base:>8.2f}x {mean_fit:>15.2f}")
    if {"dask x2", "process x2"} <= set(rows):
        (n_d, wall_d, fit_d), (n_p, wall_p, fit_p) = rows["dask x2"], rows["process x2"]
        print(f"\nDask x2 / process x1: {n_d / wall_d / base:.2f}x; Dask x2 / process x2: {(n_d / wall_d) / (n_p / wall_p):.2f}x")
        print(
            f"Dask runner overhead over worker processes: {(wall_d / n_d - wall_p / n_p) * 2000:.0f} ms a trial (wall x 2 slots), "
            f"{(fit_d - fit_p) * 1000:.0f} ms (mean trial, Optuna's start to complete)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
