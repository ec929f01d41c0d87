"""Stage 3: refit the best configuration on train + validation and register it in MLflow."""

from __future__ import annotations

from prefect import flow

from integrity.checks import verify_prepared
from stageio.files import read_json
from tasks.training import end_final_run, fit_final_model, register_final_model, start_final_run
from tracking.store import open_tracker
from tunedag.config import Config


@flow(name="train")
def train_flow(cfg: Config) -> str:
    """Fit, save to `paths.model_dir`, register under `final.registered_model`; return the version."""
    summary = read_json(cfg.paths.tune_summary, "paths.tune_summary")
    verify_prepared(cfg)  # a corrupted or changed prepared file stops here, before anything is written
    tracker = open_tracker(cfg.tracking)
    run_id = start_final_run(tracker, summary)  # RUNNING from the refit on: a killed refit is seen, and closed next time
    try:
        fit_final_model(cfg, summary)
    except BaseException as exc:
        end_final_run(tracker, run_id, exc)
        raise
    return register_final_model(cfg, tracker, summary, run_id)
