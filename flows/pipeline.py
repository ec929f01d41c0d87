"""The whole pipeline in one flow run: prepare -> tune -> train -> evaluate (what a schedule runs)."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.evaluate import evaluate_flow
from flows.prepare import prepare_flow
from flows.train import train_flow
from flows.tune import tune_flow
from tunedag.config import Config


@flow(name="tunedag-pipeline")
def pipeline_flow(cfg: Config) -> dict:
    """Run every stage as a subflow; return the test scores."""
    prepare_flow(cfg)
    tune_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=cfg.tune.parallelism))(cfg)
    train_flow(cfg)
    return evaluate_flow(cfg)


if __name__ == "__main__":
    from flows._cli import main

    raise SystemExit(main(pipeline_flow, __doc__))
