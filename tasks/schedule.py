"""The decision a (scheduled) pipeline run takes before tuning, recorded on its MLflow run."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from studies.retune import RunPlan, plan_run
from tracking.runs import log_values
from tracking.store import open_tracker
from tracking.tags import TAG_PLAN
from tunedag.config import Config
from tunedag.data import file_md5


@task(cache_policy=NO_CACHE)
def plan_pipeline_run(cfg: Config, same_data_rule: bool = True) -> RunPlan:
    """Read the data version of `paths.prepared` and decide: resume, skip, add trials or warm-start."""
    plan = plan_run(cfg, file_md5(cfg.paths.prepared), same_data_rule)
    get_run_logger().info("tunedag: %s", plan.reason)
    return plan


@task(cache_policy=NO_CACHE)
def record_plan(cfg: Config, parent_run_id: str, plan: RunPlan) -> None:
    """Tag the pipeline run with the plan's reason, so the MLflow UI shows why this run tuned as it did."""
    tags = {TAG_PLAN: plan.reason} | ({"tunedag.retuned_from": plan.warm_from} if plan.warm_from else {})
    log_values(open_tracker(cfg.tracking, create=False).client, parent_run_id, tags=tags)
