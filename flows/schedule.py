"""The pipeline on a cron schedule: served from this process, or registered with a work pool.

Both deploy `flows.pipeline.scheduled_flow`, which reads params.yaml at run time, under the name
`tunedag-scheduled/<schedule.deployment>` with the cron and time zone of `schedule`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.schedules import Cron

from flows._cli import parse_overrides
from flows.pipeline import scheduled_flow
from tunedag.config import Config

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = "flows/pipeline.py:scheduled_flow"
DESCRIPTION = (
    "tunedag: prepare, plan (resume / skip / add trials / warm start on new data), tune, train, evaluate and promote, report."
)


def _schedule(cfg: Config) -> Cron:
    return Cron(cfg.schedule.cron, timezone=cfg.schedule.timezone)


def _parameters(params: str, overrides: list[str]) -> dict[str, Any]:
    """The flow-run parameters: the config file by absolute path, the `--set` overrides as given, and this
    folder, where the config's relative paths (data, mlruns, optuna, models) are resolved."""
    return {"params": str(Path(params).resolve()), "overrides": parse_overrides(overrides), "workdir": str(Path.cwd())}


def _from_source():
    """The scheduled flow loaded from its file, so each run imports the code afresh in its own process.

    Serving the in-memory flow instead makes Prefect 3.8 pickle local modules by value, which
    drops the module globals that string annotations (`cfg: Config`) need: every run failed
    with "Pipeline_FlowModel is not fully defined".
    """
    return scheduled_flow.from_source(source=str(REPO), entrypoint=ENTRYPOINT)


def serve_pipeline(cfg: Config, params: str, overrides: list[str]) -> None:
    """Serve the deployment from this process until it is stopped; each run is a subprocess in this folder."""
    _from_source().serve(
        name=cfg.schedule.deployment,
        schedules=[_schedule(cfg)],
        parameters=_parameters(params, overrides),
        description=DESCRIPTION,
        tags=["tunedag"],
        pause_on_shutdown=False,
        limit=1,
    )


def deploy_pipeline(cfg: Config, params: str, overrides: list[str], pool: str) -> str:
    """Register the deployment on work pool `pool`, its code read from this repository; return its id.

    `to_deployment().apply()`, not `Flow.deploy`: the latter first lists the pool's workers, a request
    the Prefect 3.8.8 server refuses here with 422 (`limit: None`).
    """
    deployment = _from_source().to_deployment(
        name=cfg.schedule.deployment,
        work_pool_name=pool,
        schedules=[_schedule(cfg)],
        parameters=_parameters(params, overrides),
        description=DESCRIPTION,
        tags=["tunedag"],
        concurrency_limit=1,
    )
    return str(deployment.apply())
