"""Final model: refit the best configuration on train + validation, save it, register it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlflow.models import infer_signature
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.tracking import TAG_DATA_VERSION, TAG_GIT, TAG_STUDY, Tracker, save_sklearn_model, save_torch_model
from tasks.provenance import git_commit
from tunedag.config import Config
from tunedag.data import file_md5, load_prepared
from tunedag.estimators import is_torch_estimator_instance, skops_trusted_types
from tunedag.ensemble import build_ensemble
from tunedag.custom import final_run
from tunedag.objective import make_model
from tunedag.space import split_params

FINAL_ARTIFACT = "final_model"
CUSTOM_RESULT = "train_fn_result.json"  # a train_fn family's final metrics, in place of a model


@task(cache_policy=NO_CACHE)
def fit_final_model(cfg: Config, summary: dict) -> Path:
    """Refit the chosen configuration on train + val, and the ensemble of the top trials if configured.

    The single best model goes to `paths.single_model_dir`; the final model (the ensemble, or the
    single best again) to `paths.model_dir`. Both are written atomically.
    """
    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    family, _ = split_params(summary["best_params"], cfg.families)
    if family.train_fn:
        return _run_train_fn(cfg, prep, summary["best_params"])
    X, y = prep.xy("train", "val")
    single = make_model(cfg, prep, summary["best_params"]).fit(X, y)
    _save(cfg, single, cfg.paths.single_model_dir, X)
    final = single
    if cfg.final.ensemble.kind != "none":
        members = [(f"trial_{m['number']}", make_model(cfg, prep, m["params"])) for m in summary["top_trials"][: cfg.final.ensemble.top_k]]
        final = build_ensemble(cfg.final.ensemble.kind, members, prep.task, cfg.seed).fit(X, y)
    _save(cfg, final, cfg.paths.model_dir, X)
    return cfg.paths.model_dir


def _run_train_fn(cfg: Config, prep, params: dict) -> Path:
    """A train_fn family: its function trains on train + val and scores the test rows, once.

    Its metrics go to `CUSTOM_RESULT` in both model folders; a model it returns is not saved
    (it can be any object), so nothing is registered for it.
    """
    result = final_run(cfg, prep, params)
    for target in (cfg.paths.single_model_dir, cfg.paths.model_dir):
        staging = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / CUSTOM_RESULT).write_text(json.dumps({"params": params, "test_metrics": result.metrics}, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return cfg.paths.model_dir


def _save(cfg: Config, model, target: Path, X) -> None:
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    if is_torch_estimator_instance(last):  # a tunedag.nets network: an MLflow PyTorch model (pt2)
        save_torch_model(model, staging, input_example=X.head(20))
    else:
        trusted = skops_trusted_types(model, cfg.model.trusted_types)
        signature = infer_signature(X.head(20), model.predict(X.head(20)))
        save_sklearn_model(model, staging, trusted, signature)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


@task(cache_policy=NO_CACHE)
def register_final_model(cfg: Config, tracker: Tracker, summary: dict) -> str:
    """Upload the final model to the pipeline's parent run and register it as a new version."""
    client, run_id, name = tracker.client, summary["parent_run_id"], cfg.final.registered_model
    client.log_artifacts(run_id, str(cfg.paths.model_dir), FINAL_ARTIFACT)
    if (cfg.paths.model_dir / CUSTOM_RESULT).is_file():
        client.set_tag(run_id, "tunedag.registered", "no: a train_fn family leaves no model file to register")
        return ""
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name, description="Best configuration found by tunedag, refit on train + validation.")
    tags = {TAG_STUDY: summary["study_name"], TAG_DATA_VERSION: summary["data_version"], TAG_GIT: git_commit(),
            f"best_val_{summary['metric']}": str(summary["best_value"]), "tunedag.best_trial": str(summary["best_trial"]),
            "tunedag.ensemble": cfg.final.ensemble.kind}
    version = client.create_model_version(name, source=f"runs:/{run_id}/{FINAL_ARTIFACT}", run_id=run_id, tags=tags)
    return version.version
