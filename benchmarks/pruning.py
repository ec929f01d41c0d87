"""Compute saved by tunedag's Hyperband and successive-halving pruners, and the score they keep.

Run from the repository root:  .venv/bin/python benchmarks/pruning.py
Smoke run (1 seed, 12 trials, one task):  .venv/bin/python benchmarks/pruning.py --quick

For each task and seed the same seeded study runs three times, differing only in the pruner:

  none                 tune.pruner none, tune.fidelity none: each trial is one plain fit (the baseline)
  successive_halving   tune.pruner successive_halving + tune.fidelity (the task's kind and steps)
  hyperband            tune.pruner hyperband + the same fidelity

The loop is the tune flow's, without Prefect or MLflow: study.ask, tunedag.space.suggest,
tunedag.objective.evaluate with a reporter that calls trial.report(value, step) and
trial.should_prune() (exactly what trials.job._reporter does), then study.tell (PRUNED for a
TrialPruned, as flows.tune does). Sampler and pruner come from tunedag.samplers.build_sampler /
build_pruner on a Config validated by tunedag.config.Config, so their arguments are the ones a
params.yaml with these keys gives. With the random sampler every pruner sees the same
parameter sequence, so the comparison isolates pruning; with TPE pruning also changes what
the sampler learns (pruned trials count by their last intermediate value).

Compute is counted in the unit the fidelity grows: trees fitted (ensemble_size: the size the
trial reached, since warm_start adds trees to those already fitted) or training rows fitted
(train_fraction: each step refits from scratch on a larger fraction, so a completed trial costs
the sum of its fractions), plus the wall seconds spent in evaluate. The best score is the best
validation value among COMPLETE trials only (a pruned trial's model is partial). The target
(from the issue): Hyperband or successive halving within 0.5% of the unpruned best with at
most 50% of its compute, on at least one task. Everything is in memory.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunedag.config import Config  # noqa: E402
from tunedag.data import Prepared, load_source, prepare  # noqa: E402
from tunedag.objective import Reporter, TrialFailed, TrialPruned, evaluate  # noqa: E402
from tunedag.samplers import build_pruner, build_sampler  # noqa: E402
from tunedag.space import suggest  # noqa: E402

DATA_SEED = 42
MODEL_SEED = 0
GAP_TARGET_PCT = 0.5
COMPUTE_TARGET_PCT = 50.0
PRUNERS = ("none", "successive_halving", "hyperband")


@dataclass(frozen=True)
class Task:
    """Data, an estimator, its space, the metric and the fidelity the pruners work on."""

    name: str
    data: dict[str, Any]
    estimator: str
    fixed: dict[str, Any]
    space: dict[str, dict[str, Any]]
    metric: str
    fidelity: dict[str, Any]
    unit: str  # "trees" or "rows"

    def describe(self) -> str:
        est = self.estimator.rsplit(".", 1)[1]
        fid = dict(self.fidelity)
        return f"{self.name}: {est} {self.fixed_text()}, metric {self.metric}, fidelity {fid}"

    def fixed_text(self) -> str:
        shown = {k: v for k, v in self.fixed.items() if k not in ("n_jobs", "random_state")}
        return ", ".join(f"{k}={v}" for k, v in shown.items())


SYNTHETIC = {
    "source": "synthetic",
    "task": "classification",
    "synthetic": {"n_samples": 5000, "n_features": 20, "n_informative": 10},
}

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "extra_trees",
            SYNTHETIC,
            "sklearn.ensemble.ExtraTreesClassifier",
            {"n_estimators": 120, "n_jobs": 1, "random_state": MODEL_SEED},
            {
                "max_depth": {"type": "int", "low": 2, "high": 30},
                "min_samples_leaf": {"type": "int", "low": 1, "high": 50, "log": True},
                "max_features": {"type": "float", "low": 0.05, "high": 1.0},
                "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
            },
            "log_loss",
            {"kind": "ensemble_size", "param": "n_estimators", "steps": 6},
            "trees",
        ),
        Task(
            "hist_gb",
            SYNTHETIC,
            "sklearn.ensemble.HistGradientBoostingClassifier",
            {"max_iter": 100, "early_stopping": False, "random_state": MODEL_SEED},
            {
                "learning_rate": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
                "max_leaf_nodes": {"type": "int", "low": 4, "high": 64, "log": True},
                "min_samples_leaf": {"type": "int", "low": 2, "high": 100, "log": True},
                "l2_regularization": {"type": "float", "low": 1e-6, "high": 10.0, "log": True},
            },
            "log_loss",
            {"kind": "train_fraction", "fractions": [0.11, 0.33, 1.0]},
            "rows",
        ),
    )
}


def task_config(task: Task, seed: int, sampler: str, pruner: str, args: argparse.Namespace) -> Config:
    """The validated Config: fidelity and pruner only when pruning."""
    tune: dict[str, Any] = {"sampler": sampler, "metric": task.metric, "pruner": {"name": "none"}}
    if pruner != "none":
        fidelity = dict(task.fidelity)
        if fidelity["kind"] == "ensemble_size" and args.steps:
            fidelity["steps"] = args.steps
        tune["fidelity"] = fidelity
        tune["pruner"] = {"name": pruner, "min_resource": args.min_resource, "reduction_factor": args.reduction_factor}
    return Config.model_validate(
        {
            "seed": seed,
            "data": task.data,
            "model": {"estimator": task.estimator, "fixed": task.fixed},
            "search_space": task.space,
            "tune": tune,
        }
    )


def load_task(task: Task, args: argparse.Namespace) -> Prepared:
    cfg = task_config(task, DATA_SEED, "random", "none", args)
    frame, target = load_source(cfg.data, DATA_SEED)
    return prepare(frame, target, cfg.data, DATA_SEED, task.name)


def optuna_reporter(trial: optuna.Trial) -> Reporter:
    """What trials.job._reporter does, on the in-process trial."""

    def report(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return report


def work_done(cfg: Config, prep: Prepared, params: dict[str, Any], steps: int) -> float:
    """Training work of a trial that ran `steps` fidelity steps."""
    fid = cfg.tune.fidelity
    n_train = len(prep.xy("train")[1])
    if fid.kind == "ensemble_size":  # the sizes tunedag.objective._by_ensemble_size grows through
        total = int(params.get(fid.param, cfg.model.fixed[fid.param]))
        sizes = sorted({max(1, math.ceil(total * i / fid.steps)) for i in range(1, fid.steps + 1)})
        return float(sizes[steps - 1])
    # train_fraction: each step refits on floor(fraction * n) rows (train_test_split's train_size)
    return float(sum(n_train if f >= 1 else math.floor(f * n_train) for f in fid.fractions[:steps]))


@dataclass
class StudyResult:
    """Per trial, in order: the value (NaN unless COMPLETE), training work and evaluate seconds."""

    values: list[float]
    work: list[float]
    eval_s: list[float]
    wall_s: float
    pruned: int
    failed: int
    params: list[dict[str, Any]]
    maximize: bool

    def prefix(self, k: int) -> StudyResult:
        """The same study cut after its first k trials (what a k-trial study would have done)."""
        return StudyResult(self.values[:k], self.work[:k], self.eval_s[:k], float("nan"), 0, 0, self.params[:k], self.maximize)

    @property
    def best(self) -> float:
        done = [v for v in self.values if not math.isnan(v)]
        return (max if self.maximize else min)(done) if done else float("nan")

    @property
    def complete(self) -> int:
        return sum(not math.isnan(v) for v in self.values)


def run_study(task: Task, prep: Prepared, sampler: str, pruner: str, seed: int, args: argparse.Namespace) -> StudyResult:
    """The tune flow's ask / evaluate / tell loop, in memory."""
    cfg = task_config(task, seed, sampler, pruner, args)
    started = time.perf_counter()
    # A fixed name, as the tune flow gives its studies: HyperbandPruner assigns brackets by a hash
    # of study name and trial number, so Optuna's random default name makes runs irreproducible.
    study = optuna.create_study(
        study_name=f"bench-{task.name}-{sampler}-{seed}",
        sampler=build_sampler(cfg),
        pruner=build_pruner(cfg),
        direction=cfg.tune.resolved_direction,
    )
    values: list[float] = []
    work: list[float] = []
    eval_s: list[float] = []
    pruned = failed = 0
    for _ in range(args.trials):
        trial = study.ask()
        params = suggest(trial, cfg.families)
        reporter = optuna_reporter(trial) if pruner != "none" else None
        t0 = time.perf_counter()
        try:
            value = evaluate(cfg, prep, params, reporter).value
        except TrialPruned as stop:
            eval_s.append(time.perf_counter() - t0)
            work.append(work_done(cfg, prep, params, stop.step))
            values.append(float("nan"))
            study.tell(trial, state=TrialState.PRUNED)
            pruned += 1
            continue
        except TrialFailed:  # the work of a failed trial is unknown; none failed in the recorded runs
            eval_s.append(time.perf_counter() - t0)
            work.append(0.0)
            values.append(float("nan"))
            study.tell(trial, state=TrialState.FAIL)
            failed += 1
            continue
        eval_s.append(time.perf_counter() - t0)
        steps = cfg.tune.fidelity.n_steps
        work.append(work_done(cfg, prep, params, steps) if steps else _plain_work(task, cfg, prep))
        values.append(value)
        study.tell(trial, value)
    return StudyResult(
        values,
        work,
        eval_s,
        time.perf_counter() - started,
        pruned,
        failed,
        [t.params for t in study.trials],
        cfg.tune.resolved_direction == "maximize",
    )


def _plain_work(task: Task, cfg: Config, prep: Prepared) -> float:
    """A plain fit (no fidelity): all the trees, or all the training rows once."""
    if task.unit == "trees":
        return float(cfg.model.fixed["n_estimators"])
    return float(len(prep.xy("train")[1]))


# ---------------------------------------------------------------- report


def table(task: Task, results: dict[str, list[StudyResult]], maximize: bool, trials: int) -> tuple[str, list[str]]:
    """Mean over seeds per pruner, plus the unpruned study cut at half its trials; the target verdicts."""
    base = results["none"]
    half = trials // 2
    rows = {**results, f"none, first {half} trials": [r.prefix(half) for r in base]}
    head = (
        f"{'pruner':<24}{'best':>8}{'gap %':>8}{task.unit + ' %':>9}{'eval s':>8}{'eval %':>8}{'wall s':>8}"
        f"{'complete':>9}{'pruned':>7}"
    )
    lines = [head, "-" * len(head)]
    verdicts = []
    for pruner, rs in rows.items():
        gaps = [_gap(r.best, b.best, maximize) for r, b in zip(rs, base)]
        work = [100 * sum(r.work) / sum(b.work) for r, b in zip(rs, base)]
        evals = [100 * sum(r.eval_s) / sum(b.eval_s) for r, b in zip(rs, base)]
        wall = f"{np.mean([r.wall_s for r in rs]):>8.1f}" if not math.isnan(rs[0].wall_s) else f"{'-':>8}"
        lines.append(
            f"{pruner:<24}{np.mean([r.best for r in rs]):>8.4f}{np.mean(gaps):>8.2f}{np.mean(work):>9.1f}"
            f"{np.mean([sum(r.eval_s) for r in rs]):>8.1f}{np.mean(evals):>8.1f}{wall}"
            f"{np.mean([r.complete for r in rs]):>9.1f}{np.mean([r.pruned for r in rs]):>7.1f}"
        )
        if pruner in ("successive_halving", "hyperband"):
            met = [g <= GAP_TARGET_PCT and w <= COMPUTE_TARGET_PCT for g, w in zip(gaps, work)]
            per_seed = ", ".join(f"seed {i}: gap {g:.2f}% at {w:.0f}% {task.unit}" for i, (g, w) in enumerate(zip(gaps, work)))
            mean_met = np.mean(gaps) <= GAP_TARGET_PCT and np.mean(work) <= COMPUTE_TARGET_PCT
            verdicts.append(
                f"  {pruner}: target met on {sum(met)}/{len(met)} seeds; on the means "
                f"(gap {np.mean(gaps):.2f}%, {np.mean(work):.0f}% {task.unit}): {'MET' if mean_met else 'missed'}. "
                f"{per_seed}"
            )
    every = [v for r in base for v in r.values if not math.isnan(v)]
    spread = (
        f"  spread of the unpruned trials' values: best {(max if maximize else min)(every):.4f}, "
        f"median {np.median(every):.4f}, worst {(min if maximize else max)(every):.4f}"
    )
    return "\n".join(lines), [spread, *verdicts]


def _gap(best: float, base: float, maximize: bool) -> float:
    """How much worse than the unpruned best, in % of it (negative: better)."""
    return 100 * ((base - best) if maximize else (best - base)) / abs(base)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, from {', '.join(TASKS)}")
    parser.add_argument("--samplers", default="random,tpe", help="tunedag sampler names (default random,tpe)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--trials", type=int, default=50, help="trials per study (default 50)")
    parser.add_argument("--steps", type=int, default=0, help="ensemble_size fidelity steps (default: the task's, 6)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads (threadpoolctl; default 1: HistGradientBoosting's OpenMP threads "
        "slow down by 10x or more when another process shares the cores)",
    )
    parser.add_argument("--min-resource", type=int, default=1, help="tune.pruner.min_resource (default 1)")
    parser.add_argument("--reduction-factor", type=int, default=3, help="tune.pruner.reduction_factor (default 3)")
    parser.add_argument(
        "--metric",
        default="",
        help="tune.metric for every task (default: the task's, log_loss; roc_auc is so flat near the "
        "top that half as many unpruned trials are already within 0.5%% of the best)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: extra_trees, random, 1 seed, 12 trials")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.samplers, args.seeds, args.trials = "extra_trees", "random", 1, 12
    args.tasks, args.samplers = args.tasks.split(","), args.samplers.split(",")
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown tasks {unknown}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    with threadpool_limits(limits=args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = []
    for name in args.tasks:
        task = TASKS[name] if not args.metric else replace(TASKS[name], metric=args.metric)
        prep = load_task(task, args)
        for sampler in args.samplers:
            results: dict[str, list[StudyResult]] = {p: [] for p in PRUNERS}
            for seed in range(args.seeds):
                for pruner in PRUNERS:
                    r = run_study(task, prep, sampler, pruner, seed, args)
                    results[pruner].append(r)
                    print(
                        f"  [{time.perf_counter() - started:6.0f} s] {name} {sampler} seed {seed} {pruner}: best {r.best:.4f}, "
                        f"{task.unit} {sum(r.work):.0f}, {r.wall_s:.1f} s, pruned {r.pruned}",
                        file=sys.stderr,
                        flush=True,
                    )
                if sampler == "random":
                    same = all(results[p][-1].params == results["none"][-1].params for p in PRUNERS)
                    if not same:
                        print(f"  WARNING: {name} seed {seed}: the random sampler's parameter sequences differ", file=sys.stderr)
            maximize = task_config(task, 0, sampler, "none", args).tune.resolved_direction == "maximize"
            text, verdicts = table(task, results, maximize, args.trials)
            n_train = len(prep.xy("train")[1])
            out.append(
                f"{task.describe()}; {n_train} train rows; sampler {sampler}; seeds 0..{args.seeds - 1}; "
                f"{args.trials} trials; pruners min_resource {args.min_resource}, reduction_factor {args.reduction_factor}"
                f"\n{text}\n" + "\n".join(verdicts)
            )
    libs = ", ".join(f"{n} {version(n)}" for n in ("optuna", "scikit-learn", "numpy"))
    print(f"\n{libs}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs, {args.threads} thread(s) per fit")
    print(
        "columns: mean over seeds; gap % = how much worse than the unpruned best (negative: better); "
        "<unit> % and eval % = compute relative to the unpruned run of the same seed\n"
    )
    print("\n\n".join(out))
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
