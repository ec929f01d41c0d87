"""The execution part of `params.yaml`: where trials run and the limits each one gets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator


class RunnerConfig(BaseModel):
    """The Prefect task runner the trial tasks go to.

    `local` runs them on this machine (threads that wait on the worker processes of
    `tune.executor`); `dask` sends them to a Dask cluster through prefect-dask: the scheduler at
    `address`, or, with no address, a LocalCluster of `tune.parallelism` worker processes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["local", "dask"] = "local"
    address: str | None = None  # tcp://scheduler:8786

    @model_validator(mode="after")
    def _address_for_dask(self) -> RunnerConfig:
        if self.address and self.kind != "dask":
            raise ValueError("address is the Dask scheduler's; set kind: dask or drop it")
        if self.address and not self.address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            raise ValueError(f"address {self.address!r} must be a Dask scheduler address such as tcp://host:8786")
        return self
