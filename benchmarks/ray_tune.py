"""Ray Tune beside tunedag on the same objective: OptunaSearch + MLflowLoggerCallback.

Run from the repository root (needs the `bench` extra: pip install -e '.[bench]', which pulls ray[tune]):

    python benchmarks/ray_tune.py --trials 100 [--cost-ms 0]

The objective is overhead.py's: `tunedag.objective.evaluate` of SpinClassifier(a, b, cost_ms) on
iris, a and b integers in [0, 1000], RandomSampler(seed 42) through Ray's OptunaSearch, one trial
at a time (max_concurrent_trials 1, actors reused unless --no-reuse-actors, like the tunedag pipeline rows of overhead.py), the model
saved in the trial's folder as the same MLflow sklearn model tunedag writes, and
MLflowLoggerCallback(save_artifact=True) recording params, metrics and the folder in a SQLite
store. Per-trial time is the interval between consecutive trial completions (Ray's result
timestamps, 1 s resolution, so the mean over the run is printed, not percentiles) and the wall
time of `Tuner.fit`; the bare Optuna loop on the same objective is the baseline.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna  # noqa: E402
import overhead  # noqa: E402  (sets PYTHONPATH for Ray's workers too)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--cost-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-reuse-actors", action="store_true", help="a fresh Ray actor (process) per trial, Ray's default")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tunedag-ray-")).resolve()
    atexit.register(shutil.rmtree, workdir, True)
    overhead.isolate(workdir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from tunedag.config import load_config

    cfg = load_config(
        overhead.write_config(workdir, "ray", trials=args.trials, seed=args.seed, cost_ms=args.cost_ms, executor="thread")
    )
    overhead.run_prepare(workdir / "ray/params.yaml")
    layers = overhead.Layers(cfg, workdir)
    bare = overhead.optuna_layer("bare Optuna (memory)", cfg, lambda t, p: layers.objective(p), args.trials)

    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.search.optuna import OptunaSearch

    def trainable(config: dict) -> None:
        from modelio.mlflow_models import save_sklearn_model
        from modelio.trust import skops_trusted_types
        from tunedag.data import file_md5, load_prepared
        from tunedag.objective import evaluate

        params = {"a": int(config["a"]), "b": int(config["b"])}
        outcome = evaluate(cfg, load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared)), params)
        save_sklearn_model(
            outcome.model,
            Path(tune.get_context().get_trial_dir()) / "model",
            skops_trusted_types(outcome.model, cfg.model.trusted_types),
        )
        tune.report({"accuracy": outcome.value})

    space = {"a": optuna.distributions.IntDistribution(0, 1000), "b": optuna.distributions.IntDistribution(0, 1000)}
    init_started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_s = time.perf_counter() - init_started
    search = OptunaSearch(space, metric="accuracy", mode="max", sampler=optuna.samplers.RandomSampler(seed=args.seed))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search, num_samples=args.trials, max_concurrent_trials=1, reuse_actors=not args.no_reuse_actors
        ),
        run_config=tune.RunConfig(
            name="ray-bench",
            storage_path=str(workdir / "ray_results"),
            verbose=0,
            callbacks=[
                MLflowLoggerCallback(
                    tracking_uri=f"sqlite:///{workdir / 'mlruns/ray.db'}", experiment_name="ray-bench", save_artifact=True
                )
            ],
        ),
    )
    fit_started = time.perf_counter()
    results = tuner.fit()
    fit_s = time.perf_counter() - fit_started
    ray.shutdown()
    frame = results.get_dataframe()
    done = len(frame)
    mean_bare = sum(bare.per_trial_ms) / len(bare.per_trial_ms)
    print(f"\n{overhead.environment()}; ray {ray.__version__}")
    print(
        f"objective: evaluate(SpinClassifier, cost {args.cost_ms:g} ms) on iris, RandomSampler(seed={args.seed}), "
        f"{args.trials} trials, one at a time, reuse_actors {not args.no_reuse_actors}, model folder saved and logged as an MLflow artifact"
    )
    head = f"{'runner':<34} {'trials':>6} {'wall s':>8} {'mean ms/trial':>14}"
    print(head + "\n" + "-" * len(head))
    print(f"{'bare Optuna (memory)':<34} {len(bare.per_trial_ms):>6} {bare.total_s:>8.2f} {mean_bare:>14.1f}")
    print(f"{'Ray Tune: ray.init':<34} {'-':>6} {init_s:>8.2f} {'-':>14}")
    print(f"{'Ray Tune: Tuner.fit':<34} {done:>6} {fit_s:>8.2f} {fit_s * 1000 / max(done, 1):>14.1f}")
    print(
        f"Ray Tune overhead over bare Optuna: {fit_s * 1000 / max(done, 1) - mean_bare:.1f} ms/trial (mean, Tuner.fit wall time / trials)"
    )
    best = results.get_best_result(metric="accuracy", mode="max")
    print(f"best accuracy {best.metrics['accuracy']:.4f}; errors: {len(results.errors)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
