"""What one trial's MLflow model save costs, with skops' schema written compact (tunedag) and as skops writes it.

Run from the repository root:

    python benchmarks/model_save.py                  # 6 rounds of 40 saves each way, alternating
    python benchmarks/model_save.py --rounds 10 --saves 100

The model is the one every overhead-benchmark trial saves: tunedag's preprocessing pipeline
(imputation and scaling in a ColumnTransformer) around `bench_objectives.SpinClassifier`, fitted
on iris by `tunedag.objective.evaluate`. Each save is `modelio.mlflow_models.save_sklearn_model`, the
call a trial's worker makes (MLflow's sklearn flavour, skops format, explicit requirements).
"compact" is tunedag's default (`modelio.skops_io` makes skops write schema.json without an
indent, so Python's C JSON encoder does it); "indented" puts back skops' own `json` for the same
saves. Rounds alternate so that a machine that speeds up or slows down meanwhile affects both.
Prints CPU milliseconds per save (process time) and the schema's size.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def fitted_model():
    """The overhead benchmark's trial model, from its own config, fitted on iris through tunedag's data preparation and objective."""
    from overhead import parse_args, write_config

    from tunedag.config import load_config
    from tunedag.data import load_source, prepare
    from tunedag.objective import evaluate

    defaults = parse_args([])
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):  # a config's paths must lie inside its project
        cfg = load_config(write_config(Path(tmp), "save", trials=1, seed=defaults.seed, cost_ms=0, executor=defaults.executor))
    frame, target = load_source(cfg.data, cfg.seed)
    return cfg, evaluate(cfg, prepare(frame, target, cfg.data, cfg.seed, "iris"), {"a": 1, "b": 2}).model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each kind, alternating (default 6)")
    parser.add_argument("--saves", type=int, default=40, help="saves per round (default 40)")
    args = parser.parse_args()

    from compat.skops import writer_module
    from modelio.mlflow_models import save_sklearn_model
    from modelio.skops_io import CompactJson, skops_io
    from modelio.trust import skops_trusted_types

    persist = writer_module()  # skops' writer, whose `json` is swapped each way

    cfg, model = fitted_model()
    trusted = skops_trusted_types(model, cfg.model.trusted_types)
    kinds = {"compact (tunedag)": CompactJson, "indented (skops as shipped)": json}
    per_save: dict[str, list[float]] = {name: [] for name in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        save_sklearn_model(model, Path(tmp) / "warm-up", trusted)  # one-time imports and caches
        count = 0
        for _ in range(args.rounds):
            for name, writer in kinds.items():
                persist.json = writer
                started = time.process_time()
                for _ in range(args.saves):
                    count += 1
                    save_sklearn_model(model, Path(tmp) / f"m{count}", trusted)
                per_save[name].append((time.process_time() - started) * 1000 / args.saves)
        sizes = {}
        for name, writer in kinds.items():
            persist.json = writer
            sizes[name] = len(zipfile.ZipFile(io.BytesIO(skops_io.dumps(model))).read("schema.json"))
        persist.json = CompactJson

    print(
        f"MLflow sklearn model save (skops) of the overhead benchmark's trial model; {args.rounds} rounds x "
        f"{args.saves} saves each way, alternating; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    head = f"{'schema.json':<28} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'schema bytes':>13}"
    print(head + "\n" + "-" * len(head))
    for name, values in per_save.items():
        ordered = sorted(values)
        print(f"{name:<28} {ordered[len(ordered) // 2]:>10.2f} {ordered[0]:>8.2f} {ordered[-1]:>8.2f} {sizes[name]:>13,}")
    compact, indented = (sorted(v)[len(v) // 2] for v in per_save.values())
    print(
        f"CPU per save: {compact:.2f} ms against {indented:.2f} ms ({indented - compact:.2f} ms less, {compact / indented:.0%})"
    )


if __name__ == "__main__":
    main()
