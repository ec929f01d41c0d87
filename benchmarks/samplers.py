"""Search quality of tunedag's samplers against the searchers a user would otherwise pick.

Run from the repository root:  .venv/bin/python benchmarks/samplers.py
Smoke run (2 tasks, 1 seed, 12 trials):  .venv/bin/python benchmarks/samplers.py --quick
Needs the `bench` extra:  .venv/bin/pip install "hyperopt>=0.2.7"

Every method tunes the same estimator over the same search space of each task and selects on
the SAME validation split (tunedag's seeded train / val / test split of the task's data), with
the same metric computed by the same code (tunedag.metrics.score):

  tunedag:<name>     an Optuna ask/tell loop with tunedag.samplers.build_sampler(cfg) (random, tpe,
                     gp, cmaes, qmc: the arguments users get from params.yaml defaults), parameters
                     from tunedag.space.suggest and the value from tunedag.objective.evaluate (fit
                     on train, score on val). tunedag:grid runs the grid sampler over the task's
                     ~50-point grid (the same points GridSearchCV gets), in its seeded order.
  sklearn:grid       GridSearchCV over that grid, in ParameterGrid order (the same for every seed).
  sklearn:random     RandomizedSearchCV, n_iter = trials, distributions matching the space.
  sklearn:halving    HalvingRandomSearchCV, n_candidates = trials, factor 3, resource n_samples,
                     min_resources 'exhaust' (sklearn's default).
  hyperopt:tpe       hyperopt.fmin(algo=tpe.suggest, rstate=np.random.default_rng(seed)) over the
                     same space; each point evaluated with tunedag.objective.evaluate.

The sklearn searchers get X = train + val rows and a PredefinedSplit whose only fold trains on
the train rows and scores on the val rows (refit=False), so each of their fits is exactly one
tunedag holdout trial; the script checks that the grid points both grid methods evaluate score
the same. The model is the tunedag pipeline (preprocessing + estimator) with a fixed
random_state, so the objective is a deterministic function of the parameters: only the
searcher's seed changes between seeds, and "the best score any method found" is well defined.

Counting trials: one trial = one fit on the full training split scored on the full val split.
GridSearchCV and RandomizedSearchCV results are taken from cv_results_ in evaluation order.
HalvingRandomSearchCV fits most candidates on subsamples (train AND val are subsampled), whose
scores are not comparable with the others; it is therefore charged its compute in full-fit
equivalents (sum over its fits of n_resources / max_resources, ~8 for 50 candidates) and gets
no score until it has spent all of it; its score is then the full-val score (measured with
tunedag.objective.evaluate, not charged) of the configuration it picks (best_params_: the best of
its last round, on that round's subsample). Its number of fits is printed too.

Reported per task: mean over seeds of the best-so-far validation score after trials 10, 25, 50;
"to target": the first trial at which best-so-far reaches within 0.5% of the best score any method
found on that task (score >= 0.995 * best when maximising, <= 1.005 * best when minimising), mean
over the seeds that reach it ('-' if none; '(k/n)' when only k of n seeds do); wall seconds (sum
over seeds). Then per method: total wall time and mean rank at the last trial over tasks.
Everything is in memory; nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from scipy import stats
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import GridSearchCV, HalvingRandomSearchCV, PredefinedSplit, RandomizedSearchCV, train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunedag.config import CategoricalParam, Config, FloatParam, IntParam, Param  # noqa: E402
from tunedag.data import SPLIT, Prepared, load_source, prepare  # noqa: E402
from tunedag.metrics import score  # noqa: E402
from tunedag.objective import TrialFailed, evaluate, make_model  # noqa: E402
from tunedag.samplers import build_sampler  # noqa: E402
from tunedag.space import suggest  # noqa: E402

DATA_SEED = 42  # the train / val / test split, the same for every method and seed
MODEL_SEED = 0  # the estimators' random_state, fixed so the objective is deterministic
TARGET_FRACTION = 0.005  # "trials to target": within 0.5% of the best score found on the task
CHECKPOINTS = (10, 25, 50)
TUNEDAG_SAMPLERS = ("random", "tpe", "gp", "cmaes", "qmc", "grid")
PEERS = ("sklearn:grid", "sklearn:random", "sklearn:halving", "hyperopt:tpe")
METHODS = tuple(f"tunedag:{s}" for s in TUNEDAG_SAMPLERS) + PEERS


# ---------------------------------------------------------------- tasks


def _f(low: float, high: float, log: bool = False) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": log}


def _i(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, "log": log}


def _c(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


@dataclass(frozen=True)
class Task:
    """A data set, an estimator with its fixed arguments, a search space, its grid and a metric."""

    name: str
    data: dict[str, Any]
    estimator: str
    metric: str
    space: dict[str, dict[str, Any]]
    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None  # stratified subsample of the source, for speed

    def describe(self) -> str:
        est = self.estimator.rsplit(".", 1)[1]
        rows = f", {self.rows} rows" if self.rows else ""
        grid = math.prod(len(v) for v in self.grid.values())
        return f"{self.name}{rows}: {est}, {len(self.space)} params, metric {self.metric}, grid {grid} points"


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "breast_cancer",
            {"source": "sklearn", "name": "breast_cancer"},
            "sklearn.ensemble.GradientBoostingClassifier",
            "log_loss",
            {
                "n_estimators": _i(20, 100, log=True),
                "learning_rate": _f(0.01, 0.5, log=True),
                "max_depth": _i(1, 5),
                "subsample": _f(0.5, 1.0),
            },
            {"n_estimators": [30, 100], "learning_rate": [0.02, 0.05, 0.1, 0.2], "max_depth": [1, 2, 3], "subsample": [0.7, 1.0]},
            fixed={"random_state": MODEL_SEED},
        ),
        Task(
            "wine",
            {"source": "sklearn", "name": "wine"},
            "sklearn.ensemble.RandomForestClassifier",
            "log_loss",
            {
                "n_estimators": _i(10, 60, log=True),
                "max_depth": _i(1, 12),
                "min_samples_leaf": _i(1, 10),
                "max_features": _c("sqrt", "log2", 0.5, 1.0),
            },
            {"n_estimators": [15, 50], "max_depth": [2, 4, 8, 12], "min_samples_leaf": [1, 3, 6], "max_features": ["sqrt", 0.5]},
            fixed={"random_state": MODEL_SEED, "n_jobs": 1},
        ),
        Task(
            "digits",
            {"source": "sklearn", "name": "digits"},
            "sklearn.svm.SVC",
            "accuracy",
            {"C": _f(1e-2, 1e3, log=True), "gamma": _f(1e-5, 1.0, log=True)},
            {"C": [0.01, 0.068, 0.46, 3.2, 22.0, 150.0, 1000.0], "gamma": [1e-5, 6.8e-5, 4.6e-4, 3.2e-3, 0.022, 0.15, 1.0]},
            fixed={"random_state": MODEL_SEED},
            rows=1000,
        ),
        Task(
            "diabetes",
            {"source": "sklearn", "name": "diabetes"},
            "sklearn.svm.SVR",
            "rmse",
            {"C": _f(0.1, 1e4, log=True), "gamma": _f(1e-4, 1.0, log=True), "epsilon": _f(0.01, 30.0, log=True)},
            {"C": [1.0, 10.0, 100.0, 1000.0], "gamma": [0.001, 0.01, 0.1, 1.0], "epsilon": [0.1, 1.0, 10.0]},
        ),
        Task(
            "iris",
            {"source": "sklearn", "name": "iris"},
            "sklearn.neighbors.KNeighborsClassifier",
            "log_loss",
            {"n_neighbors": _i(1, 40), "weights": _c("uniform", "distance"), "p": _c(1, 2)},
            {"n_neighbors": [1, 2, 3, 4, 6, 8, 11, 15, 20, 26, 33, 40], "weights": ["uniform", "distance"], "p": [1, 2]},
        ),
        Task(
            "synthetic",
            {
                "source": "synthetic",
                "task": "classification",
                "synthetic": {"n_samples": 2000, "n_features": 20, "n_informative": 8},
            },
            "sklearn.ensemble.ExtraTreesClassifier",
            "roc_auc",
            {
                "n_estimators": _i(10, 60, log=True),
                "max_depth": _i(2, 20),
                "min_samples_leaf": _i(1, 20),
                "max_features": _f(0.1, 1.0),
            },
            {
                "n_estimators": [20, 50],
                "max_depth": [4, 8, 16],
                "min_samples_leaf": [1, 5, 15],
                "max_features": [0.2, 0.5, 0.8, 1.0],
            },
            fixed={"random_state": MODEL_SEED, "n_jobs": 1},
        ),
    )
}
DEFAULT_TASKS = ("breast_cancer", "wine", "digits", "diabetes", "iris")


def task_config(task: Task, seed: int, sampler: str = "random", grid: bool = False) -> Config:
    """The validated tunedag Config of a task; `grid` replaces the space by the task's grid points."""
    space = {k: _c(*v) for k, v in task.grid.items()} if grid else task.space
    return Config.model_validate(
        {
            "seed": seed,
            "data": task.data,
            "model": {"estimator": task.estimator, "fixed": task.fixed},
            "search_space": space,
            "tune": {"sampler": sampler, "metric": task.metric},
        }
    )


def load_task(task: Task) -> Prepared:
    """The task's data, split by tunedag.data.prepare with the fixed DATA_SEED, in memory."""
    cfg = task_config(task, DATA_SEED)
    frame, target = load_source(cfg.data, DATA_SEED)
    if task.rows and task.rows < len(frame):
        frame = train_test_split(frame, train_size=task.rows, stratify=frame[target], random_state=DATA_SEED)[0]
        frame = frame.reset_index(drop=True)
    return prepare(frame, target, cfg.data, DATA_SEED, task.name)


# ---------------------------------------------------------------- results


@dataclass
class Run:
    """One method on one task and seed: (x, score) events in evaluation order, and its wall time.

    x is the trial number (1-based) at which the score became known; for Halving, the compute
    spent in full-fit equivalents. NaN scores (failed fits, subsample fits) never count as best.
    """

    events: list[tuple[float, float]]
    seconds: float
    fits: int
    note: str = ""

    def best_at(self, t: float, maximize: bool) -> float:
        values = [s for x, s in self.events if x <= t and not math.isnan(s)]
        if not values:
            return float("nan")
        return max(values) if maximize else min(values)

    def first_reaching(self, target: float, maximize: bool) -> float | None:
        best = None
        for x, s in self.events:
            if math.isnan(s):
                continue
            best = s if best is None else (max(best, s) if maximize else min(best, s))
            if (best >= target) if maximize else (best <= target):
                return math.ceil(x)
        return None


def _trial_events(scores: list[float]) -> list[tuple[float, float]]:
    return [(float(i), s) for i, s in enumerate(scores, 1)]


# ---------------------------------------------------------------- tunedag samplers


def run_tunedag(task: Task, prep: Prepared, sampler: str, seed: int, trials: int) -> Run:
    """An ask/tell loop like flows.tune's: build_sampler(cfg), suggest, evaluate, tell."""
    cfg = task_config(task, seed, sampler, grid=sampler == "grid")
    started = time.perf_counter()
    study = optuna.create_study(sampler=build_sampler(cfg), direction=cfg.tune.resolved_direction)
    scores: list[float] = []
    for _ in range(trials):
        if sampler == "grid" and study.sampler.is_exhausted(study):
            break
        trial = study.ask()
        params = suggest(trial, cfg.families)
        try:
            value = evaluate(cfg, prep, params).value
        except TrialFailed:
            study.tell(trial, state=TrialState.FAIL)
            scores.append(float("nan"))
            continue
        study.tell(trial, value)
        scores.append(value)
    seconds = time.perf_counter() - started
    run = Run(_trial_events(scores), seconds, len(scores))
    run.params = [t.params for t in study.trials]  # type: ignore[attr-defined]  (for the grid check)
    return run


# ---------------------------------------------------------------- scikit-learn searchers


class _IntDist:
    """An int distribution for RandomizedSearchCV (scipy has no log-uniform int), like Optuna's."""

    def __init__(self, low: int, high: int, log: bool, step: int):
        self.low, self.high, self.log, self.step = low, high, log, step

    def rvs(self, random_state: Any = None) -> int:
        rng = (
            np.random.default_rng(random_state.randint(2**31))
            if isinstance(random_state, np.random.RandomState)
            else np.random.default_rng(random_state)
        )
        if self.log:  # log-uniform on [low - 0.5, high + 0.5], rounded: Optuna's IntDistribution(log=True)
            value = round(math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5))))
        else:
            value = self.low + self.step * int(rng.integers(0, (self.high - self.low) // self.step + 1))
        return int(min(max(value, self.low), self.high))


def _scipy_distribution(p: Param) -> Any:
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, IntParam):
        return _IntDist(p.low, p.high, p.log, p.step)
    if p.log:
        return stats.loguniform(p.low, p.high)
    if p.step is not None:
        return [float(v) for v in np.arange(p.low, p.high + p.step / 2, p.step)]
    return stats.uniform(p.low, p.high - p.low)


def _holdout(prep: Prepared) -> tuple[Any, Any, PredefinedSplit]:
    """Train + val rows, and a split that fits on the train rows and scores on the val rows."""
    rows = prep.frame[prep.frame[SPLIT].isin(["train", "val"])]
    X, y = rows[list(prep.numeric + prep.categorical)], rows[prep.target]
    fold = np.where(rows[SPLIT].to_numpy() == "val", 0, -1)
    return X, y, PredefinedSplit(fold)


def _scorer(metric: str, maximize: bool) -> Callable[[Any, Any, Any], float]:
    """sklearn maximises scores: tunedag's own metric code, negated for metrics to minimise."""
    sign = 1.0 if maximize else -1.0

    def scorer(estimator: Any, X: Any, y: Any) -> float:
        return sign * score(estimator, X, y, [metric])[metric]

    return scorer


def run_sklearn(task: Task, prep: Prepared, kind: str, seed: int, trials: int) -> Run:
    """GridSearchCV / RandomizedSearchCV / HalvingRandomSearchCV on the tunedag holdout split."""
    cfg = task_config(task, seed)
    maximize = cfg.tune.resolved_direction == "maximize"
    sign = 1.0 if maximize else -1.0
    X, y, cv = _holdout(prep)
    estimator = make_model(cfg, prep, {})  # the tunedag pipeline with the fixed arguments
    common = {
        "scoring": _scorer(task.metric, maximize),
        "cv": cv,
        "refit": False,
        "n_jobs": 1,
        "error_score": np.nan,
        "return_train_score": False,
    }  # Halving's default True would score every fit on train too
    if kind == "grid":
        search = GridSearchCV(estimator, {f"model__{k}": v for k, v in task.grid.items()}, **common)
    elif kind == "random":
        dists = {f"model__{k}": _scipy_distribution(p) for k, p in cfg.search_space.items()}
        search = RandomizedSearchCV(estimator, dists, n_iter=trials, random_state=seed, **common)
    else:
        dists = {f"model__{k}": _scipy_distribution(p) for k, p in cfg.search_space.items()}
        search = HalvingRandomSearchCV(
            estimator,
            dists,
            n_candidates=trials,
            factor=3,
            resource="n_samples",
            min_resources="exhaust",
            random_state=seed,
            **common,
        )
    started = time.perf_counter()
    search.fit(X, y)
    seconds = time.perf_counter() - started
    res = search.cv_results_
    scores = [sign * float(s) for s in res["mean_test_score"]]
    if kind != "halving":
        return Run(_trial_events(scores[:trials]), seconds, len(scores))
    # Halving: charge compute in full-fit equivalents; its result is the full-val score of its pick.
    max_res = search.max_resources_
    cost = float(sum(np.asarray(res["n_resources"]) / max_res))
    pick = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    try:
        best = evaluate(cfg, prep, pick).value
    except TrialFailed:
        best = float("nan")
    rounds = "/".join(str(n) for n in search.n_candidates_)
    resources = "/".join(str(n) for n in search.n_resources_)
    note = f"{len(scores)} fits: candidates {rounds} on n_samples {resources} of {max_res}; {cost:.1f} full-fit equivalents"
    return Run([(cost, float(best))], seconds, len(scores), note)


# ---------------------------------------------------------------- hyperopt


def _hyperopt_space(space: dict[str, Param]) -> tuple[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]:
    """The hyperopt expression of a tunedag space, and a function mapping a sample back to params."""
    from hyperopt import hp

    exprs: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, CategoricalParam):
            exprs[name] = hp.choice(name, list(p.choices))
        elif p.log:
            exprs[name] = (
                hp.qloguniform(name, math.log(p.low), math.log(p.high), 1)
                if isinstance(p, IntParam)
                else hp.loguniform(name, math.log(p.low), math.log(p.high))
            )
        elif isinstance(p, IntParam) or p.step is not None:
            exprs[name] = hp.quniform(name, p.low, p.high, p.step or 1)
        else:
            exprs[name] = hp.uniform(name, p.low, p.high)

    def decode(sample: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, p in space.items():
            v = sample[name]
            if isinstance(p, IntParam):
                v = int(min(max(round(v), p.low), p.high))
            elif isinstance(p, FloatParam):
                v = float(min(max(v, p.low), p.high))
            out[name] = v
        return out

    return exprs, decode


def run_hyperopt(task: Task, prep: Prepared, seed: int, trials: int) -> Run:
    """hyperopt.fmin with TPE, each point scored by tunedag.objective.evaluate."""
    from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, tpe

    cfg = task_config(task, seed)
    sign = -1.0 if cfg.tune.resolved_direction == "maximize" else 1.0  # fmin minimises
    exprs, decode = _hyperopt_space(cfg.search_space)
    scores: list[float] = []

    def objective(sample: dict[str, Any]) -> dict[str, Any]:
        try:
            value = evaluate(cfg, prep, decode(sample)).value
        except TrialFailed:
            scores.append(float("nan"))
            return {"status": STATUS_FAIL}
        scores.append(value)
        return {"loss": sign * value, "status": STATUS_OK}

    started = time.perf_counter()
    fmin(
        objective,
        exprs,
        algo=tpe.suggest,
        max_evals=trials,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    return Run(_trial_events(scores), time.perf_counter() - started, len(scores))


# ---------------------------------------------------------------- driver


def run_method(method: str, task: Task, prep: Prepared, seed: int, trials: int) -> Run:
    family, name = method.split(":")
    if family == "tunedag":
        return run_tunedag(task, prep, name, seed, trials)
    if family == "sklearn":
        return run_sklearn(task, prep, name, seed, trials)
    return run_hyperopt(task, prep, seed, trials)


def check_grid_agreement(runs: dict[str, list[Run]], task: Task, prep: Prepared) -> float:
    """Max |tunedag evaluate - GridSearchCV score| over the grid points both evaluated (seed 0 runs)."""
    ours, theirs = runs["tunedag:grid"][0], runs["sklearn:grid"][0]
    keys = list(task.grid)
    from sklearn.model_selection import ParameterGrid

    by_point = {tuple(repr(p[k]) for k in keys): s for p, (_, s) in zip(ParameterGrid(task.grid), theirs.events)}
    diffs = []
    for params, (_, s) in zip(ours.params, ours.events):  # type: ignore[attr-defined]
        other = by_point.get(tuple(repr(params[k]) for k in keys))
        if other is not None and not (math.isnan(s) or math.isnan(other)):
            diffs.append(abs(s - other))
    return max(diffs) if diffs else float("nan")


def fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def task_table(task: Task, runs: dict[str, list[Run]], maximize: bool, checkpoints: list[int]) -> tuple[str, dict[str, float]]:
    """The per-task table, and each method's mean best-so-far at the last checkpoint (for ranks)."""
    all_scores = [s for rs in runs.values() for r in rs for _, s in r.events if not math.isnan(s)]
    best = max(all_scores) if maximize else min(all_scores)
    target = best - TARGET_FRACTION * abs(best) if maximize else best + TARGET_FRACTION * abs(best)
    head = f"{'method':<17}" + "".join(f"{'best@' + str(c):>10}" for c in checkpoints) + f"{'to target':>12}{'wall s':>8}"
    lines = [
        f"{task.describe()}; {'max' if maximize else 'min'}imise; best found {best:.4f}, target {target:.4f}",
        head,
        "-" * len(head),
    ]
    last: dict[str, float] = {}
    for method, rs in runs.items():
        cells = []
        for c in checkpoints:
            vals = [r.best_at(c, maximize) for r in rs]
            vals = [v for v in vals if not math.isnan(v)]
            mean = float(np.mean(vals)) if len(vals) == len(rs) else float("nan")
            cells.append(f"{fmt(mean):>10}")
            if c == checkpoints[-1]:
                last[method] = mean
        hits = [h for h in (r.first_reaching(target, maximize) for r in rs) if h is not None]
        tt = "-" if not hits else f"{np.mean(hits):.1f}" + ("" if len(hits) == len(rs) else f" ({len(hits)}/{len(rs)})")
        lines.append(f"{method:<17}" + "".join(cells) + f"{tt:>12}{sum(r.seconds for r in rs):>8.1f}")
    notes = sorted({r.note for rs in runs.values() for r in rs if r.note})
    lines += [f"  sklearn:halving: {n}" for n in notes]
    return "\n".join(lines), last


def summary_table(
    methods: list[str],
    seconds: dict[str, float],
    fits: dict[str, int],
    lasts: list[tuple[bool, dict[str, float]]],
    last_checkpoint: int,
) -> str:
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    for maximize, last in lasts:
        ordered = sorted(methods, key=lambda m: (math.isnan(last[m]), -last[m] if maximize else last[m]))
        vals = [last[m] for m in ordered]
        for m in methods:  # ties share the mean rank
            if math.isnan(last[m]):
                ranks[m].append(float(len(methods)))
                continue
            tied = [i + 1 for i, v in enumerate(vals) if v == last[m]]
            ranks[m].append(float(np.mean(tied)))
    head = f"{'method':<17}{'mean rank @' + str(last_checkpoint):>16}{'fits':>8}{'wall s':>9}{'ms/fit':>8}"
    lines = [head, "-" * len(head)]
    for m in sorted(methods, key=lambda m: np.mean(ranks[m])):
        lines.append(
            f"{m:<17}{np.mean(ranks[m]):>16.2f}{fits[m]:>8}{seconds[m]:>9.1f}{1000 * seconds[m] / max(fits[m], 1):>8.1f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks",
        default=",".join(DEFAULT_TASKS),
        help=f"comma-separated, from {', '.join(TASKS)} (default: {','.join(DEFAULT_TASKS)})",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per method and task (default 3)")
    parser.add_argument("--trials", type=int, default=50, help="trials per study (default 50)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--quick", action="store_true", help="smoke run: iris and breast_cancer, 1 seed, 12 trials")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.seeds, args.trials = "iris,breast_cancer", 1, 12
    args.tasks = args.tasks.split(",")
    args.methods = args.methods.split(",")
    unknown = [t for t in args.tasks if t not in TASKS] + [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown tasks or methods: {unknown}")
    return args


def environment_line() -> str:
    libs = ", ".join(f"{n} {version(n)}" for n in ("optuna", "scikit-learn", "hyperopt", "numpy", "torch"))
    return f"{libs}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import logging

    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    checkpoints = sorted({c for c in CHECKPOINTS if c < args.trials} | {args.trials})
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    seconds: dict[str, float] = dict.fromkeys(args.methods, 0.0)
    fits: dict[str, int] = dict.fromkeys(args.methods, 0)
    lasts, tables, tally = [], [], Counter()
    for name in args.tasks:
        task = TASKS[name]
        prep = load_task(task)
        maximize = task_config(task, 0).tune.resolved_direction == "maximize"
        runs: dict[str, list[Run]] = {}
        for method in args.methods:
            runs[method] = []
            for seed in seeds:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    run = run_method(method, task, prep, seed, args.trials)
                for w in caught:
                    tally[(method, w.category.__name__, str(w.message).splitlines()[0][:90])] += 1
                runs[method].append(run)
                seconds[method] += run.seconds
                fits[method] += run.fits
            print(
                f"  [{time.perf_counter() - started:6.0f} s] {name} {method}: {sum(r.seconds for r in runs[method]):.1f} s",
                file=sys.stderr,
                flush=True,
            )
        table, last = task_table(task, runs, maximize, checkpoints)
        if {"tunedag:grid", "sklearn:grid"} <= set(runs):
            table += f"\n  grid check: max |tunedag evaluate - GridSearchCV score| on shared points = {check_grid_agreement(runs, task, prep):.2e}"
        tables.append(table)
        lasts.append((maximize, last))
    total = time.perf_counter() - started
    print(f"\n{environment_line()}")
    print(
        f"tasks {','.join(args.tasks)}; seeds {seeds}; {args.trials} trials; data split seed {DATA_SEED}, "
        f"model random_state {MODEL_SEED}\n"
    )
    print("\n\n".join(tables))
    print(
        f"\nAll tasks (rank of the mean best-so-far at trial {checkpoints[-1]} within each task, 1 = best; "
        f"wall s summed over tasks and seeds):"
    )
    print(summary_table(args.methods, seconds, fits, lasts, checkpoints[-1]))
    if tally:
        print("\nWarnings raised during the runs (count, method, category, message):")
        for (method, cat, msg), n in sorted(tally.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {n:>6}  {method:<16} {cat}: {msg}")
    print(f"\ntotal wall time {total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
