"""What a stage needs on disk before its flow runs: light (no Prefect), so a command checks it before the flow's imports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.outputs import read_json

if TYPE_CHECKING:
    from tunedag.config import Config


def tune_summary(cfg: Config) -> None:
    """The train and evaluate stages start from the summary the tune stage wrote."""
    read_json(cfg.paths.tune_summary, "paths.tune_summary")


def data_path(cfg: Config) -> None:
    """The prepare stage (and the pipeline) refuse a data.path that is no regular file, or a CSV with repeated names."""
    from tunedag.data import check_data_path

    check_data_path(cfg.data)


# module of a stage's flow -> its check
CHECKS = {"flows.train": tune_summary, "flows.evaluate": tune_summary, "flows.prepare": data_path, "flows.pipeline": data_path}
