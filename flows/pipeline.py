"""The whole pipeline in one flow run: prepare -> tune -> train -> evaluate -> report (what a schedule runs)."""

from __future__ import annotations

from prefect import flow

from flows.evaluate import evaluate_flow
from flows.prepare import prepare_flow
from flows.report import report_flow
from flows.train import train_flow
from flows.tune import task_runner, tune_flow
from tunedag.config import Config


@flow(name="tunedag-pipeline")
def pipeline_flow(cfg: Config) -> dict:
    """Run every stage as a subflow, print the closing summary; return the test scores."""
    prepare_flow(cfg)
    tune_flow.with_options(task_runner=task_runner(cfg))(cfg)
    train_flow(cfg)
    scores = evaluate_flow(cfg)
    print(report_flow(cfg))  # the closing summary: best params, val and test scores, where to look next
    return scores


if __name__ == "__main__":
    from flows._cli import main

    raise SystemExit(main(pipeline_flow, __doc__))
