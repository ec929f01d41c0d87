"""Per-trial overhead of the tunedag tune stage over a bare Optuna loop on the same objective.

Run from the repository root:  python benchmarks/overhead.py --trials 100

Every layer samples the same two-parameter space with the same seeded RandomSampler, so all
layers see the same parameter sequence (checked and printed). Layers, each adding one thing:

  optuna, trivial objective     study.optimize in memory, objective = suggest + sleep
  optuna + evaluate             the same, objective = tunedag.objective.evaluate (fit + score)
  + journal storage             Optuna JournalStorage file, as tune.storage configures it
  + MLflow run, params, metrics one child run per trial through tasks.tracking helpers
  + model artifact              tasks.tracking.log_sklearn_model, as run_trial does it
  pipeline: flows.tune.run      the real tune flow: ask/tell driver, one Prefect task per trial

Per-trial time is the interval between consecutive trial completions (Optuna's
datetime_complete; the first trial from its datetime_start), so it holds everything a
trial costs, between-trial work included, and the intervals add up to the trial phase.
The overhead is p50(pipeline) - p50(optuna + evaluate). All state (MLflow SQLite store and
artifacts, Optuna journals, Prefect home, prepared data) goes to a fresh temporary folder.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import optuna
import yaml

# Prefect-free imports only here: flows.* and tasks.tuning import Prefect, which must see
# PREFECT_HOME (set by `isolate`) first, so they are imported inside the functions using them.
from tasks.tracking import TAG_ROLE, find_runs, log_sklearn_model, log_values, open_tracker, save_sklearn_model, start_run
from tunedag.config import Config, load_config
from tunedag.data import Prepared, file_md5, load_prepared
from tunedag.estimators import skops_trusted_types
from tunedag.objective import TrialOutcome, evaluate
from tunedag.samplers import build_sampler
from tunedag.study import build_storage

TARGET_MS = 100.0
Params = dict[str, Any]
Objective = Callable[[Params], float]
Evaluation = Callable[[Params], TrialOutcome]


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    layer: str
    trials: int | None
    per_trial_ms: list[float]
    total_s: float


# ---------------------------------------------------------------- set-up


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per layer (default 100)")
    parser.add_argument("--sleep", type=float, default=0.0, help="extra objective cost in seconds (default 0)")
    parser.add_argument("--seed", type=int, default=42, help="sampler and model seed (default 42)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (default: delete it at exit)")
    return parser.parse_args(argv)


def isolate(workdir: Path) -> None:
    """Point Prefect at a private home in `workdir` and make `workdir` the working directory.

    Must run before Prefect is imported. PREFECT_API_URL, if set, is left alone (then that
    server is used instead of a temporary one).
    """
    os.environ["PREFECT_HOME"] = str(workdir / "prefect-home")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.chdir(workdir)


def bench_config_dict(workdir: Path, trials: int, seed: int) -> dict[str, Any]:
    """A tiny but complete params.yaml: iris, a decision tree with two int parameters."""
    paths = ("prepared", "tune_summary", "model_dir", "tune_metrics", "test_metrics", "history_plot")
    files = ("data/prepared.parquet", "reports/summary.json", "models/final", "metrics/tune.json",
             "metrics/test.json", "plots/history.csv")
    return {
        "seed": seed,
        "paths": {"raw_dir": str(workdir / "data/raw"), **{k: str(workdir / f) for k, f in zip(paths, files)}},
        "data": {"source": "sklearn", "name": "iris"},
        "model": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
        "search_space": {"max_depth": {"type": "int", "low": 1, "high": 10},
                         "min_samples_leaf": {"type": "int", "low": 1, "high": 10}},
        "tune": {"sampler": "random", "n_trials": trials, "metric": "accuracy", "parallelism": 1,
                 "storage": str(workdir / "optuna/pipeline.journal")},
        "tracking": {"uri": f"sqlite:///{workdir / 'mlruns/mlflow.db'}",
                     "artifact_root": str(workdir / "mlruns/artifacts")},
    }


def write_config(workdir: Path, trials: int, seed: int) -> Path:
    """Write the benchmark's params.yaml into `workdir` and return its path."""
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(bench_config_dict(workdir, trials, seed), sort_keys=False), encoding="utf-8")
    return path


def run_prepare(params: Path) -> float:
    """Run the prepare flow in its own process (so the tune flow starts its own Prefect server)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows.prepare", "--params", str(params)],
                          cwd=params.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"prepare flow failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


# ---------------------------------------------------------------- timing helpers


def per_trial_ms(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    """Completion-to-completion intervals in ms; the first trial counts from its own start."""
    done = sorted((t for t in trials if t.datetime_complete is not None), key=lambda t: t.datetime_complete)
    if not done:
        return []
    marks = [done[0].datetime_start] + [t.datetime_complete for t in done]
    return [(b - a).total_seconds() * 1000 for a, b in zip(marks, marks[1:])]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def with_sleep(fn: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """`fn` preceded by time.sleep(seconds): the --sleep objective cost."""
    if seconds <= 0:
        return fn

    def slowed(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return fn(*args, **kwargs)

    return slowed


# ---------------------------------------------------------------- in-process layers


def suggest(trial: optuna.Trial, space: dict[str, Any]) -> Params:
    """Suggest every parameter of the (all-int) benchmark space, in config order."""
    return {name: trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log) for name, p in space.items()}


def optuna_layer(name: str, cfg: Config, objective: Objective, trials: int,
                 storage: optuna.storages.BaseStorage | None = None) -> tuple[Row, list[Params]]:
    """Time `study.optimize` with the configured seeded sampler; return the row and the params seen."""
    started = time.perf_counter()
    study = optuna.create_study(storage=storage, sampler=build_sampler(cfg),
                                direction=cfg.tune.resolved_direction)
    study.optimize(lambda t: objective(suggest(t, cfg.search_space)), n_trials=trials)
    total = time.perf_counter() - started
    ordered = sorted(study.trials, key=lambda t: t.number)
    return Row(name, len(ordered), per_trial_ms(ordered), total), [t.params for t in ordered]


def tracked_objective(cfg: Config, evaluation: Evaluation, with_model: bool) -> Objective:
    """`evaluation` wrapped in one MLflow child run with params, metrics and optionally the model."""
    tracker = open_tracker(cfg.tracking.model_copy(update={"experiment": "bench-layers"}))
    parent = start_run(tracker, "bench-parent", {})

    def objective(params: Params) -> float:
        run_id = start_run(tracker, "bench-trial", {}, parent)
        log_values(tracker.client, run_id, params=params)
        outcome = evaluation(params)
        log_values(tracker.client, run_id, metrics={f"val_{k}": v for k, v in outcome.metrics.items()})
        if with_model:
            trusted = skops_trusted_types(outcome.model, cfg.model.trusted_types)
            log_sklearn_model(tracker.client, run_id, outcome.model, trusted)
        tracker.client.set_terminated(run_id, status="FINISHED")
        return outcome.value

    return objective


def warm_up(cfg: Config, prep: Prepared, workdir: Path) -> None:
    """One untimed fit, score and model save, so one-time imports (skops, mlflow.sklearn) land in no layer."""
    outcome = evaluate(cfg, prep, {name: p.low for name, p in cfg.search_space.items()})
    save_sklearn_model(outcome.model, Path(tempfile.mkdtemp(dir=workdir)) / "model", skops_trusted_types(outcome.model))


def in_process_layers(cfg: Config, workdir: Path, trials: int, sleep: float) -> tuple[list[Row], list[list[Params]]]:
    """The five layers below the pipeline, each on the same prepared data and sampler seed."""
    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    warm_up(cfg, prep, workdir)
    outcome = with_sleep(lambda params: evaluate(cfg, prep, params), sleep)
    trivial = with_sleep(lambda params: float(sum(params.values())), sleep)

    def value(params: Params) -> float:
        return outcome(params).value

    specs = [
        ("optuna, trivial objective", trivial, None),
        ("optuna + evaluate", value, None),
        ("+ journal storage", value, build_storage(str(workdir / "optuna/layer-journal.log"))),
        ("+ MLflow run, params, metrics", tracked_objective(cfg, outcome, False), build_storage(str(workdir / "optuna/layer-mlflow.log"))),
        ("+ model artifact", tracked_objective(cfg, outcome, True), build_storage(str(workdir / "optuna/layer-model.log"))),
    ]
    results = [optuna_layer(name, cfg, fn, trials, storage) for name, fn, storage in specs]
    return [r for r, _ in results], [p for _, p in results]


# ---------------------------------------------------------------- the pipeline


def pipeline_study(cfg: Config) -> optuna.Study:
    """The study the tune flow wrote (its journal holds exactly one study)."""
    storage = build_storage(cfg.tune.storage)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def child_run_ms(cfg: Config) -> list[float]:
    """Start-to-end durations (ms) of the tune flow's MLflow trial runs: the trial task's body."""
    runs = find_runs(open_tracker(cfg.tracking), f"tags.`{TAG_ROLE}` = 'trial'")
    return [float(r.info.end_time - r.info.start_time) for r in runs if r.info.end_time]


def pipeline_rows(cfg: Config, sleep: float) -> tuple[list[Row], list[Params]]:
    """Time flows.tune.run: start-up to the first trial, the trials, and the task bodies."""
    import flows.tune
    import tasks.tuning

    tasks.tuning.evaluate = with_sleep(tasks.tuning.evaluate, sleep)  # in this process only
    called_at, started = dt.datetime.now(), time.perf_counter()
    flows.tune.run(cfg)
    total = time.perf_counter() - started
    trials = sorted(pipeline_study(cfg).trials, key=lambda t: t.number)
    startup = (trials[0].datetime_start - called_at).total_seconds()
    rows = [
        Row("pipeline: start-up to first trial", None, [], startup),
        Row("pipeline: flows.tune.run", len(trials), per_trial_ms(trials), total),
        Row("  of which trial task body (MLflow run)", len(trials), child_run_ms(cfg), float("nan")),
    ]
    return rows, [t.params for t in trials]


# ---------------------------------------------------------------- report


def format_table(rows: list[Row]) -> str:
    """A plain-text table: layer, trials, p50 and p95 ms/trial, total s."""
    head = f"{'layer':<40} {'trials':>6} {'p50 ms/trial':>13} {'p95 ms/trial':>13} {'total s':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        trials = "-" if r.trials is None else str(r.trials)
        p50, p95 = (f"{percentile(r.per_trial_ms, q):.1f}" if r.per_trial_ms else "-" for q in (50, 95))
        total = "-" if math.isnan(r.total_s) else f"{r.total_s:.3f}"
        lines.append(f"{r.layer:<40} {trials:>6} {p50:>13} {p95:>13} {total:>8}")
    return "\n".join(lines)


def environment_line() -> str:
    """Library versions and CPU count."""
    libs = ", ".join(f"{n} {version(n)}" for n in ("optuna", "mlflow", "prefect", "scikit-learn"))
    return f"{libs}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs"


def overhead_line(rows: list[Row]) -> str:
    """Median per-trial time of the pipeline minus that of the bare Optuna + evaluate loop."""
    by_name = {r.layer: r for r in rows}
    pipe, bare = by_name["pipeline: flows.tune.run"], by_name["optuna + evaluate"]
    p50 = percentile(pipe.per_trial_ms, 50) - percentile(bare.per_trial_ms, 50)
    mean = sum(pipe.per_trial_ms) / len(pipe.per_trial_ms) - sum(bare.per_trial_ms) / len(bare.per_trial_ms)
    verdict = "met" if p50 < TARGET_MS else "MISSED"
    return f"pipeline overhead over bare Optuna: {p50:.1f} ms/trial (target < {TARGET_MS:.0f} ms, {verdict}; mean difference {mean:.1f} ms/trial)"


def main(argv: list[str] | None = None) -> int:
    """Set up the temporary project, run every layer, print the table."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tunedag-bench-")).resolve()
    if not args.keep:  # registered first, so it runs after Prefect's own exit handlers
        atexit.register(shutil.rmtree, workdir, True)
    isolate(workdir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = write_config(workdir, args.trials, args.seed)
    cfg = load_config(params)
    prepare_s = run_prepare(params)
    rows, sequences = in_process_layers(cfg, workdir, args.trials, args.sleep)
    pipe_rows, pipe_params = pipeline_rows(cfg, args.sleep)
    same = all(seq == pipe_params for seq in sequences)
    print(f"\n{environment_line()}")
    print(f"objective: DecisionTreeClassifier on iris, 2 int params, RandomSampler(seed={args.seed}), sleep {args.sleep} s")
    print(f"prepare flow in its own process (imports, Prefect server, data): {prepare_s:.1f} s, not counted below")
    print(f"Prefect API: {os.environ.get('PREFECT_API_URL') or 'temporary local server started by the flow run'}\n")
    print(format_table(rows + pipe_rows))
    print(f"\n{overhead_line(rows + pipe_rows)}")
    print(f"same parameter sequence in every layer: {'yes' if same else 'NO'}")
    if args.keep:
        print(f"state kept in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
