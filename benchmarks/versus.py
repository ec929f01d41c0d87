"""The tune stage of this tree side by side with another git revision's, in one run, rounds alternating.

Run from the repository root:
    python benchmarks/versus.py --ref 18e4a93 --cost-ms 500 --trials 100 --rounds 2

Each round runs, for the revision and then for this tree, `tunedag prepare` (not timed) and
`tunedag tune` (as `python -m flows.cli`, so that the tree's own code runs) in a fresh project folder (that tree's code first on PYTHONPATH), on the same
config: iris, `bench_objectives.SpinClassifier` (fit spins one core for --cost-ms), two integer
parameters, RandomSampler(seed), parallelism 1. Both talk to one Prefect server this script starts,
so the server's start-up is in neither and its CPU in neither column. A bare Optuna loop on the same
objective in this process gives the baseline. Printed: per-trial wall time (p50 of the intervals between
completions), overhead over bare Optuna, trial-phase wall time over bare, CPU per trial of the
command's process tree (the flow and its trial workers, sampled every 0.2 s, from the first trial's
start to the last one's end), and start-up (command started -> first trial started).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import psutil
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def config(trials: int, cost_ms: float, seed: int) -> dict:
    """A small complete params.yaml; every path relative to the project folder."""
    return {
        "seed": seed,
        "data": {"source": "sklearn", "name": "iris", "cv_folds": 0},
        "model": {
            "estimator": "bench_objectives.SpinClassifier",
            "fixed": {"cost_ms": cost_ms},
            "trusted_types": ["bench_objectives.SpinClassifier"],
        },
        "search_space": {"a": {"type": "int", "low": 0, "high": 1000}, "b": {"type": "int", "low": 0, "high": 1000}},
        "tune": {"sampler": "random", "n_trials": trials, "metric": "accuracy", "parallelism": 1, "study_name": "bench"},
    }


def tree_cpu(root: psutil.Process, seen: dict[int, float]) -> None:
    """Record the CPU seconds of `root` and its descendants so far (a dead process keeps its last reading)."""
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            seen[proc.pid] = times.user + times.system
        except psutil.Error:
            pass


def run_stage(tree: Path, project: Path, stage: str, env: dict, sets: list[str]) -> list[tuple[float, float]]:
    """Run `tunedag <stage>` of `tree` in `project`; (epoch time, CPU seconds of its process tree so far) samples."""
    seen: dict[int, float] = {}
    samples: list[tuple[float, float]] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", stage, *[a for s in sets for a in ("--set", s)]],
        cwd=project,
        env={**env, "PYTHONPATH": f"{tree}{os.pathsep}{HERE}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        tree_cpu(root, seen)
        samples.append((time.time(), sum(seen.values())))
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: flows.{stage} exited {proc.returncode}:\n{proc.stderr.read()[-3000:]}")
    return samples


def cpu_between(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """CPU seconds the process tree used between two epoch times (the samples nearest inside them)."""
    inside = [cpu for t, cpu in samples if start <= t <= end]
    return inside[-1] - inside[0] if len(inside) > 1 else float("nan")


def intervals(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    """Completion-to-completion intervals in ms; the first trial counts from its own start."""
    done = sorted((t for t in trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    marks = [done[0].datetime_start] + [t.datetime_complete for t in done]
    return [(b - a).total_seconds() * 1000 for a, b in zip(marks, marks[1:])]


def measure(name: str, tree: Path, workdir: Path, args: argparse.Namespace, env: dict, sets: list[str]) -> dict:
    project = workdir / f"{name}-{time.monotonic_ns()}"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(config(args.trials, args.cost_ms, args.seed)), encoding="utf-8")
    run_stage(tree, project, "prepare", env, sets)
    launched = time.time()
    samples = run_stage(tree, project, "tune", env, sets)
    journal = next((project / "optuna").glob("*.journal"))
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    trials = study.get_trials(deepcopy=False)
    first = min(t.datetime_start for t in trials).timestamp()
    last = max(t.datetime_complete for t in trials).timestamp()
    return {
        "tree": name,
        "p50": statistics.median(intervals(trials)),
        "phase": sum(intervals(trials)),
        "cpu": cpu_between(samples, first, last) * 1000 / len(trials),
        "startup": first - launched,
    }


def bare(args: argparse.Namespace) -> dict:
    """Optuna's own loop in memory on the same objective: the baseline."""
    sys.path.insert(0, str(HERE))
    from bench_objectives import SpinClassifier
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    X, y = load_iris(return_X_y=True)
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.4, random_state=args.seed)

    def objective(trial: optuna.Trial) -> float:
        model = SpinClassifier(trial.suggest_int("a", 0, 1000), trial.suggest_int("b", 0, 1000), args.cost_ms)
        return model.fit(Xt, yt).score(Xv, yv)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=args.seed))
    study.optimize(objective, n_trials=args.trials)
    return {
        "tree": "bare Optuna (memory)",
        "p50": statistics.median(intervals(study.trials)),
        "phase": sum(intervals(study.trials)),
        "cpu": float("nan"),
        "startup": float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the git revision to compare with (checked out in a temporary worktree)")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--cost-ms", type=float, default=500.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--set-new", action="append", default=[], metavar="KEY=VALUE", help="an override for this tree only")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="tunedag-versus-") as tmp:
        workdir = Path(tmp)
        old = workdir / "ref"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(old), args.ref], check=True, capture_output=True)
        port = 4200 + os.getpid() % 700
        env = {
            **os.environ,
            "PREFECT_HOME": str(workdir / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_UI_ENABLED": "false",
            "TUNEDAG_ALLOWED_MODULES": "bench_objectives",
        }  # this tree imports only allowed modules
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_healthy(env["PREFECT_API_URL"])
            rows = [bare(args)]
            for _ in range(args.rounds):
                rows.append(measure(f"{args.ref}", old, workdir, args, env, []))
                rows.append(measure("this tree", ROOT, workdir, args, env, args.set_new))
        finally:
            server.terminate()
            server.wait(timeout=30)
            subprocess.run([*git, "remove", "--force", str(old)], capture_output=True)
    print(table(rows, args))
    return 0


def table(rows: list[dict], args: argparse.Namespace) -> str:
    base = rows[0]
    lines = [
        f"{args.trials} trials of {args.cost_ms:g} ms, RandomSampler(seed={args.seed}), parallelism 1, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f} at the end; rounds alternate",
        f"| {'tree':<22} | p50 ms/trial | over bare p50 | phase / bare | CPU ms/trial | start-up s |",
        f"|{'-' * 24}|{'-' * 14}|{'-' * 15}|{'-' * 14}|{'-' * 14}|{'-' * 12}|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tree']:<22} | {r['p50']:12.1f} | {r['p50'] - base['p50']:13.1f} | {r['phase'] / base['phase']:12.3f} | "
            f"{r['cpu']:12.1f} | {r['startup']:10.2f} |"
        )
    return "\n".join(lines)


def _wait_healthy(url: str, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the benchmark's Prefect server did not answer")


if __name__ == "__main__":
    raise SystemExit(main())
