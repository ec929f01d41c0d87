"""Trials per second with parallelism 1 vs 2, through the real tune flow, in one run.

Run from the repository root:  python benchmarks/parallel.py --trials 12
                               python benchmarks/parallel.py --model torch --trials 12

Each mode runs `tunedag tune` on the same config (a seeded random search over
RandomForestClassifier sizes on synthetic data, about 1 s a trial on one core), with its own
fresh Optuna study, and is timed from its first trial's start to its last trial's end (Optuna's
timestamps), so process start-up and Prefect's temporary server are not counted. Modes:

  process x1   tune.executor process, parallelism 1 (the baseline)
  process x2   worker processes, parallelism 2, threads per trial capped at cores // 2
  thread x2    the same trials in 2 threads of one process (the GIL serialises the Python parts)
  dask x1      a Dask LocalCluster of 1 worker: against process x1, Dask's own cost a trial, nothing shared
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
import threading
import time
from pathlib import Path

import optuna
import psutil
import yaml

from studies.storage import build_storage

MODES = {
    "process x1": {"tune.executor": "process", "tune.parallelism": 1},
    "process x2": {"tune.executor": "process", "tune.parallelism": 2},
    "thread x2": {"tune.executor": "thread", "tune.parallelism": 2},
    "dask x1": {"tune.runner.kind": "dask", "tune.parallelism": 1},
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


def _role(proc: psutil.Process, driver: int) -> str:
    """Which part of a mode a process is: the flow's process, a forkserver, a trial process (forked from one), a Dask worker."""
    if proc.pid == driver:
        return "driver"
    parent = proc.parent()
    if "forkserver" in " ".join(proc.cmdline()):  # a forked trial process keeps its forkserver's command line
        return "trial process" if parent is not None and "forkserver" in " ".join(parent.cmdline()) else "forkserver"
    return "dask worker" if parent is not None and parent.pid == driver and "spawn_main" in " ".join(proc.cmdline()) else "other"


def _sample(driver: int, until: threading.Event, every: float = 0.2) -> list[tuple[float, dict[int, tuple[str, float]]]]:
    """Every `every` s until `until`: the wall clock and each process's (role, CPU seconds) in the driver's tree."""
    samples, roles = [], {}
    while not until.wait(every):
        try:
            procs = [psutil.Process(driver), *psutil.Process(driver).children(recursive=True)]
        except psutil.Error:
            continue
        seen = {}
        for proc in procs:
            try:
                times = proc.cpu_times()
                role = roles.setdefault(proc.pid, _role(proc, driver))
            except psutil.Error:
                continue
            seen[proc.pid] = (role, times.user + times.system + times.children_user + times.children_system)
        samples.append((time.time(), seen))
    return samples


def _cpu_between(samples: list, start: float, end: float) -> dict[str, float]:
    """CPU seconds by role between the first sample after `start` and the last before `end` (processes alive at both)."""
    inside = [seen for at, seen in samples if start <= at <= end]
    first, last = inside[0], inside[-1]
    by_role: dict[str, float] = {}
    for pid, (role, cpu) in last.items():
        by_role[role] = by_role.get(role, 0.0) + cpu - first.get(pid, (role, 0.0))[1]
    return by_role


def run_mode(
    params: Path, workdir: Path, name: str, overrides: dict, turn: int = 0
) -> tuple[int, float, float, dict[str, float]]:
    storage = workdir / f"{name.replace(' ', '_')}-{turn}.journal"
    # Its own MLflow store too: a study finds the runs of an earlier one with its name and tells them again.
    sets = {**overrides, "tune.storage": str(storage), "tracking.uri": f"sqlite:///{storage.with_suffix('.db')}"}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    log = storage.with_suffix(".log")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "tune", "--params", str(params), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        until, samples = threading.Event(), []
        sampler = threading.Thread(target=lambda: samples.extend(_sample(proc.pid, until)), daemon=True)
        sampler.start()
        code = proc.wait()
        until.set()
        sampler.join()
    if code != 0:
        raise SystemExit(f"{name} failed:\n{log.read_text()[-6000:]}")
    (summary,) = build_storage(str(storage)).get_all_studies()
    trials = optuna.load_study(study_name=summary.study_name, storage=build_storage(str(storage))).get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    mean_fit = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials) / len(trials)
    return len(trials), (end - start).total_seconds(), mean_fit, _cpu_between(samples, start.timestamp(), end.timestamp())


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
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the modes in turn this many times and sum them (a shared machine's load evens out)",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tunedag-parallel-"))
    os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect"))
    params = write_config(workdir, args.trials, args.estimators, args.model, args.epochs)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
    )
    subprocess.run(
        [sys.executable, "-m", "flows.cli", "prepare", "--params", str(params)], check=True, capture_output=True, cwd=workdir
    )
    rows: dict[str, tuple[int, float, float, dict[str, float]]] = {}
    for turn in range(args.rounds):
        for name in args.modes:
            n, phase, mean_fit, cpu = run_mode(params, workdir, name, MODES[name], turn)
            print(f"round {turn + 1}: {name}: {n / phase:.3f} trials/s, load average {os.getloadavg()[0]:.1f}", flush=True)
            m, total, fits, before = rows.get(name, (0, 0.0, 0.0, {}))
            merged = {role: before.get(role, 0.0) + cpu.get(role, 0.0) for role in {*before, *cpu}}
            rows[name] = (m + n, total + phase, (fits * m + mean_fit * n) / (m + n), merged)
    base = rows["process x1"][0] / rows["process x1"][1]
    what = f"the digits CNN ({args.epochs} epochs)" if args.model == "torch" else f"RandomForest({args.estimators} trees)"
    print(
        f"\n{os.cpu_count()} cores; {args.trials} trials of {what} per mode and round, {args.rounds} round(s); threads per trial: cores // parallelism\n"
    )
    print(f"{'mode':<12} {'trials':>6} {'phase s':>8} {'trials/s':>9} {'speed-up':>9} {'s/trial (task)':>15} {'CPU s/trial':>12}")
    for name, (n, phase, mean_fit, cpu) in rows.items():
        rate = n / phase
        print(
            f"{name:<12} {n:>6} {phase:>8.2f} {rate:>9.3f} {rate / base:>8.2f}x {mean_fit:>15.2f} {sum(cpu.values()) / n:>12.3f}"
        )
    print("\nCPU ms a trial by process, first trial's start to last trial's end:")
    roles = sorted({role for *_, cpu in rows.values() for role, seconds in cpu.items() if seconds > 0.01})
    print(f"{'mode':<12} " + " ".join(f"{role:>15}" for role in roles))
    for name, (n, *_, cpu) in rows.items():
        print(f"{name:<12} " + " ".join(f"{cpu.get(role, 0.0) / n * 1000:>15.0f}" for role in roles))
    for dask, local, slots in (("dask x1", "process x1", 1), ("dask x2", "process x2", 2)):
        if {dask, local} <= set(rows):
            (n_d, wall_d, fit_d, _), (n_p, wall_p, fit_p, _) = rows[dask], rows[local]
            around = {name: (sum(cpu.values()) - cpu.get("trial process", 0.0)) / n * 1000 for name, (n, *_, cpu) in rows.items()}
            print(
                f"\n{dask} / process x1: {n_d / wall_d / base:.2f}x"
                + (f", / {local}: {(n_d / wall_d) / (n_p / wall_p):.2f}x" if slots > 1 else "")
                + "; "
                f"Dask runner overhead over worker processes: {(wall_d / n_d - wall_p / n_p) * slots * 1000:.0f} ms a trial "
                f"(wall x {slots} slots), {(fit_d - fit_p) * 1000:.0f} ms (mean trial, Optuna's start to complete); "
                f"CPU a trial outside the trial processes {around[dask]:.0f} ms against {around[local]:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
