"""The `schedule` part of `params.yaml`: when the served pipeline runs, and what a run does with
new or unchanged data, and how the registry promotes the model it produces."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Literal

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunedag.config_types import Int


class ScheduleConfig(BaseModel):
    """What `tunedag serve` deploys and what each scheduled (or `tunedag run`) pipeline run decides.

    - a new data version (or a new config): a new study, warm-started from the best
      `warm_start_top_k` configurations of the previous study (0: start cold);
    - the same data, its study already holding `tune.n_trials` finished trials: `skip` the run,
      or `add_trials` more to the same study;
    - the registry alias `champion` moves to the new model version only when it beats the
      champion on the current test split; otherwise the new version is the `challenger`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cron: str = "0 3 * * *"
    timezone: str = "UTC"
    deployment: str = Field("scheduled", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    warm_start_top_k: Int = Field(5, ge=0, le=1000)
    on_same_data: Literal["skip", "add_trials"] = "skip"
    add_trials: Int = Field(10, ge=1, le=1_000_000)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            CronSim(value, dt.datetime(2026, 1, 1))
        except (CronSimError, ValueError) as exc:
            raise ValueError(
                f"{value!r} is not a cron expression (minute hour day month weekday, e.g. '0 3 * * *'): {exc}"
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as UTC or Europe/Paris") from None
        return value
