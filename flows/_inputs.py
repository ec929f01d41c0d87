"""What a stage needs on disk before its flow runs: light (no Prefect), so a command checks it before the flow's imports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.outputs import read_json

if TYPE_CHECKING:
    from tunedag.config import Config


def prepared(cfg: Config) -> None:
    """The tune stage and its workers start from the dataset the prepare stage wrote."""
    from tunedag.data import require_prepared  # pandas: loaded once the config is

    require_prepared(cfg.paths.prepared)


def tune_summary(cfg: Config) -> None:
    """The train and evaluate stages start from the summary the tune stage wrote."""
    read_json(cfg.paths.tune_summary, "paths.tune_summary")


def report_inputs(cfg: Config) -> None:
    """The report reads the tune summary and the test scores the evaluate stage wrote."""
    tune_summary(cfg)
    read_json(cfg.paths.test_metrics, "paths.test_metrics")


# module of a stage's flow -> its check
CHECKS = {"flows.tune": prepared, "flows.worker": prepared, "flows.train": tune_summary, "flows.evaluate": tune_summary,
          "flows.report": report_inputs}
