"""The pipeline on a cron schedule: served from this process, or registered with a work pool.

Both deploy `flows.pipeline.scheduled_flow`, which reads params.yaml at run time, under the name
`tunedag-scheduled/<schedule.deployment>` with the cron and time zone of `schedule`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.flows import EntrypointType
from prefect.schedules import Cron

from flows._cli import parse_overrides
from flows.pipeline import scheduled_flow
from tunedag.config import Config

REPO = Path(__file__).resolve().parents[1]
DESCRIPTION = "tunedag: prepare, plan (resume / skip / add trials / warm start on new data), tune, train, evaluate and promote, report."


def _schedule(cfg: Config) -> Cron:
    return Cron(cfg.schedule.cron, timezone=cfg.schedule.timezone)


def _parameters(params: str, overrides: list[str]) -> dict[str, Any]:
    """The flow-run parameters: the config file by absolute path, and the `--set` overrides as given."""
    return {"params": str(Path(params).resolve()), "overrides": parse_overrides(overrides)}


def serve_pipeline(cfg: Config, params: str, overrides: list[str]) -> None:
    """Serve the deployment from this process until it is stopped; each run is a subprocess in this folder."""
    scheduled_flow.serve(name=cfg.schedule.deployment, schedules=[_schedule(cfg)], parameters=_parameters(params, overrides),
                         description=DESCRIPTION, tags=["tunedag"], entrypoint_type=EntrypointType.MODULE_PATH,
                         pause_on_shutdown=False, limit=1)


def deploy_pipeline(cfg: Config, params: str, overrides: list[str], pool: str) -> str:
    """Register the deployment on work pool `pool`, its code pulled from this folder; return its id."""
    flow = scheduled_flow.from_source(source=str(Path.cwd()), entrypoint=f"{Path(__file__).with_name('pipeline.py').relative_to(REPO)}:scheduled_flow")
    return str(flow.deploy(name=cfg.schedule.deployment, work_pool_name=pool, schedules=[_schedule(cfg)],
                           parameters=_parameters(params, overrides), description=DESCRIPTION, tags=["tunedag"],
                           build=False, push=False, print_next_steps=False, concurrency_limit=1))
