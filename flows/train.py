"""Stage 3: refit the best configuration on train + validation and register it in MLflow."""

from __future__ import annotations

from prefect import flow

from integrity.checks import verify_prepared
from tasks.outputs import read_json
from tasks.tracking import open_tracker
from tasks.training import fit_final_model, register_final_model
from tunedag.config import Config


@flow(name="train")
def train_flow(cfg: Config) -> str:
    """Fit, save to `paths.model_dir`, register under `final.registered_model`; return the version."""
    summary = read_json(cfg.paths.tune_summary, "paths.tune_summary")
    verify_prepared(cfg)  # a corrupted or changed prepared file stops here, before anything is written
    tracker = open_tracker(cfg.tracking)
    fit_final_model(cfg, summary)
    return register_final_model(cfg, tracker, summary)


if __name__ == "__main__":  # `python -m flows.train`, an alias of `tunedag train`
    from flows._cli import main

    raise SystemExit(main(train_flow, __doc__))
