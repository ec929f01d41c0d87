"""Final model: refit the best configuration on train + validation, save it, register it."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal

from modelio.mlflow_models import save_model
from studies.storage import process_alive, worker_id
from tracking.provenance import lineage_tags
from tracking.runs import start_run
from tracking.store import Tracker, find_runs
from tracking.tags import TAG_ERROR, TAG_OWNER, TAG_ROLE, TAG_STATE, TAG_STUDY
from tunedag.config import Config
from tunedag.custom import final_run
from tunedag.data import file_md5, load_prepared
from tunedag.ensemble import build_ensemble
from tunedag.objective import fit_weighted, make_model
from tunedag.paths import clear_staging, replace_folder
from tunedag.selection import best_score_key
from tunedag.space import split_params

FINAL_ARTIFACT = "final_model"
CUSTOM_RESULT = "train_fn_result.json"  # a train_fn family's final metrics, in place of a model
ROLE_FINAL = "final"  # TAG_ROLE of the run holding one training's final model (what a registry version points at)
DIED = "interrupted: the process training it died"
OUTPUT_DIRS = {"paths.model_dir": "model_dir", "paths.single_model_dir": "single_model_dir"}  # checked at config load too


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
    single = fit_weighted(make_model(cfg, prep, summary["best_params"]), X, y, prep.weights("train", "val"))
    _save(cfg, single, cfg.paths.single_model_dir, X, "paths.single_model_dir")
    final = single
    if cfg.final.ensemble.kind != "none":
        members = [
            (f"trial_{m['number']}", make_model(cfg, prep, m["params"]))
            for m in summary["top_trials"][: cfg.final.ensemble.top_k]
        ]
        final = build_ensemble(cfg.final.ensemble.kind, members, prep.task, cfg.seed).fit(X, y)
    _save(cfg, final, cfg.paths.model_dir, X, "paths.model_dir")
    return cfg.paths.model_dir


def _run_train_fn(cfg: Config, prep, params: dict) -> Path:
    """A train_fn family: its function trains on train + val and scores the test rows, once.

    Its metrics go to `CUSTOM_RESULT` in both model folders; a model it returns is not saved
    (it can be any object), so nothing is registered for it.
    """
    result = final_run(cfg, prep, params)
    for key, field in OUTPUT_DIRS.items():
        target = getattr(cfg.paths, field)
        staging = clear_staging(target)
        staging.mkdir(parents=True)
        (staging / CUSTOM_RESULT).write_text(json.dumps({"params": params, "test_metrics": result.metrics}, indent=2))
        replace_folder(staging, target, key)
    return cfg.paths.model_dir


def _save(cfg: Config, model, target: Path, X, key: str) -> None:
    staging = clear_staging(target)
    save_model(model, staging, cfg.model.trusted_types, X.head(20))
    replace_folder(staging, target, key)


def start_final_run(tracker: Tracker, summary: dict) -> str:
    """Close the final runs a killed `train` left RUNNING, then create this training's run (RUNNING while it refits); its id.

    A run left RUNNING by a dead process on this host is closed KILLED with why (`tunedag.error`);
    nothing points at it (a version is registered only after its upload), so no version changes.
    """
    tags = lineage_tags(summary["study_name"], summary["data_version"])
    stale = (
        f"tags.`{TAG_STUDY}` = '{summary['study_name']}' and tags.`{TAG_ROLE}` = '{ROLE_FINAL}' and attributes.status = 'RUNNING'"
    )
    for run in find_runs(tracker, stale):
        if not process_alive(run.data.tags.get(TAG_OWNER)):
            tracker.client.set_tag(run.info.run_id, TAG_ERROR, DIED)
            tracker.client.set_tag(run.info.run_id, TAG_STATE, "FAIL")
            tracker.client.set_terminated(run.info.run_id, status="KILLED")
    return start_run(
        tracker,
        f"final-{summary['study_name']}",
        {**tags, TAG_ROLE: ROLE_FINAL, TAG_OWNER: worker_id()},
        summary["parent_run_id"],
    ).info.run_id


def end_final_run(tracker: Tracker, run_id: str, exc: BaseException) -> None:
    """Close a final run whose training stopped: KILLED when interrupted (Ctrl-C, SIGTERM), else FAILED, with why."""
    interrupted = isinstance(exc, (KeyboardInterrupt, TerminationSignal))
    why = "interrupted: stopped by Ctrl-C or SIGTERM" if interrupted else f"{type(exc).__name__}: {exc}"
    try:
        tracker.client.set_tag(run_id, TAG_ERROR, why[:5000])
        tracker.client.set_tag(run_id, TAG_STATE, "FAIL")
        tracker.client.set_terminated(run_id, status="KILLED" if interrupted else "FAILED")
    except Exception:  # the store is down: the next `train` closes the run as stale
        pass


@task(cache_policy=NO_CACHE)
def register_final_model(cfg: Config, tracker: Tracker, summary: dict, run_id: str | None = None) -> str:
    """Upload the final model to the training's run and register it as a new version; return the version ("" if none).

    Each training gets a fresh run `final-<study>` nested under the pipeline run (`run_id`, from
    `start_final_run`; one is started here when None), and the version points at
    `runs:/<that run>/final_model`: nothing writes to that run's artifacts afterwards, so a
    later training never changes the files of a version registered before (the champion's included).
    """
    client, name = tracker.client, cfg.final.registered_model
    tags = lineage_tags(summary["study_name"], summary["data_version"])
    run_id = run_id or start_final_run(tracker, summary)
    try:
        client.log_artifacts(run_id, str(cfg.paths.model_dir), FINAL_ARTIFACT)
        if (cfg.paths.model_dir / CUSTOM_RESULT).is_file():
            client.set_tag(run_id, "tunedag.registered", "no: a train_fn family leaves no model file to register")
            client.set_terminated(run_id)
            return ""
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name, description="Best configuration found by tunedag, refit on train + validation.")
        tags |= {
            best_score_key(summary): str(summary["best_value"]),
            "tunedag.best_trial": str(summary["best_trial"]),
            "tunedag.ensemble": cfg.final.ensemble.kind,
        }
        version = client.create_model_version(name, source=f"runs:/{run_id}/{FINAL_ARTIFACT}", run_id=run_id, tags=tags)
    except BaseException as exc:
        end_final_run(tracker, run_id, exc)
        raise
    client.set_terminated(run_id)
    return version.version


def latest_final_run(tracker: Tracker, summary: dict) -> str | None:
    """The id of the newest final-model run under this pipeline run (the last `train`), or None if none yet."""
    runs = find_runs(tracker, f"tags.`mlflow.parentRunId` = '{summary['parent_run_id']}' and tags.`{TAG_ROLE}` = '{ROLE_FINAL}'")
    return max(runs, key=lambda r: r.info.start_time).info.run_id if runs else None


def registered_versions(tracker: Tracker, summary: dict) -> list:
    """The registry versions the last `train` of this pipeline run registered (empty for a train_fn family)."""
    run_id = latest_final_run(tracker, summary)
    return tracker.client.search_model_versions(f"run_id = '{run_id}'") if run_id else []
