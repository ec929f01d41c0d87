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


def stores(cfg: Config) -> None:
    """A database named by tracking.uri or tune.storage answers one connect (MLflow would retry it for about 100 s)."""
    from tunedag.reach import check_database_reachable

    check_database_reachable(cfg.tracking.uri, "tracking.uri")
    check_database_reachable(cfg.tune.storage, "tune.storage")


# module of a stage's flow -> its check
CHECKS = {"flows.train": lambda cfg: (tune_summary(cfg), stores(cfg)), "flows.evaluate": lambda cfg: (tune_summary(cfg), stores(cfg)),
          "flows.prepare": data_path, "flows.pipeline": lambda cfg: (data_path(cfg), stores(cfg)),
          "flows.tune": stores, "flows.worker": stores}
