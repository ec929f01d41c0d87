"""The whole pipeline in one flow run: prepare -> plan -> tune -> train -> evaluate (+ promote) -> report.

This is what a schedule runs (`tunedag serve`): the plan step resumes an unfinished study,
skips or adds trials when the data did not change, and warm-starts a new study from the previous
one's best trials when it did (`schedule` in params.yaml, docs/schedule.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.evaluate import evaluate_flow
from flows.prepare import prepare_flow
from flows.report import report_flow
from flows.train import train_flow
from flows.tune import task_runner, tune_flow
from tasks.schedule import plan_pipeline_run, record_plan
from tunedag.config import Config, load_config


@flow(name="tunedag-pipeline")
def pipeline_flow(cfg: Config) -> dict:
    """Run every stage as a subflow, print the closing summary; return the test scores (or why it skipped)."""
    prepare_flow(cfg)
    plan = plan_pipeline_run(cfg)
    if plan.skip:
        print(f"tunedag: {plan.reason}")
        return {"skipped": plan.reason}
    summary = tune_flow.with_options(task_runner=task_runner(plan.cfg))(plan.cfg)
    record_plan(plan.cfg, summary["parent_run_id"], plan)
    train_flow(plan.cfg)
    scores = evaluate_flow(plan.cfg)
    print(report_flow(plan.cfg))  # the closing summary: best params, val and test scores, where to look next
    return scores


@flow(name="tunedag-scheduled")
def scheduled_flow(params: str = "params.yaml", overrides: dict[str, Any] | None = None, workdir: str | None = None) -> dict:
    """What the deployment runs: in `workdir` (the project folder; default: that of `params`), read and
    validate `params` at run time (edits apply to the next run), then the pipeline.

    Each run is its own process, so changing its working directory touches nothing else.
    """
    os.chdir(workdir or Path(params).resolve().parent)
    cfg = load_config(params, overrides)
    get_run_logger().info("tunedag: pipeline on %s in %s", params, os.getcwd())
    return pipeline_flow(cfg)
