"""Final model: refit the best configuration on train + validation, save it, register it."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlflow.models import infer_signature
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.tracking import TAG_DATA_VERSION, TAG_GIT, TAG_STUDY, Tracker, save_sklearn_model
from tasks.provenance import git_commit
from tunedag.config import Config
from tunedag.data import file_md5, load_prepared
from tunedag.estimators import skops_trusted_types
from tunedag.ensemble import build_ensemble
from tunedag.objective import make_model

FINAL_ARTIFACT = "final_model"


@task(cache_policy=NO_CACHE)
def fit_final_model(cfg: Config, summary: dict) -> Path:
    """Refit the chosen configuration on train + val, and the ensemble of the top trials if configured.

    The single best model goes to `paths.single_model_dir`; the final model (the ensemble, or the
    single best again) to `paths.model_dir`. Both are written atomically.
    """
    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    X, y = prep.xy("train", "val")
    single = make_model(cfg, prep, summary["best_params"]).fit(X, y)
    _save(cfg, single, cfg.paths.single_model_dir, X)
    final = single
    if cfg.final.ensemble.kind != "none":
        members = [(f"trial_{m['number']}", make_model(cfg, prep, m["params"])) for m in summary["top_trials"][: cfg.final.ensemble.top_k]]
        final = build_ensemble(cfg.final.ensemble.kind, members, prep.task, cfg.seed).fit(X, y)
    _save(cfg, final, cfg.paths.model_dir, X)
    return cfg.paths.model_dir


def _save(cfg: Config, model, target: Path, X) -> None:
    trusted = skops_trusted_types(model, cfg.model.trusted_types)
    signature = infer_signature(X.head(20), model.predict(X.head(20)))
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    save_sklearn_model(model, staging, trusted, signature)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


@task(cache_policy=NO_CACHE)
def register_final_model(cfg: Config, tracker: Tracker, summary: dict) -> str:
    """Upload the final model to the pipeline's parent run and register it as a new version."""
    client, run_id, name = tracker.client, summary["parent_run_id"], cfg.final.registered_model
    client.log_artifacts(run_id, str(cfg.paths.model_dir), FINAL_ARTIFACT)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name, description="Best configuration found by tunedag, refit on train + validation.")
    tags = {TAG_STUDY: summary["study_name"], TAG_DATA_VERSION: summary["data_version"], TAG_GIT: git_commit(),
            f"best_val_{summary['metric']}": str(summary["best_value"]), "tunedag.best_trial": str(summary["best_trial"]),
            "tunedag.ensemble": cfg.final.ensemble.kind}
    version = client.create_model_version(name, source=f"runs:/{run_id}/{FINAL_ARTIFACT}", run_id=run_id, tags=tags)
    return version.version
