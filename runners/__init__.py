"""Where a trial's job runs: threads, worker processes or a Dask cluster, behind one contract (`runners.base.Runner`)."""

from __future__ import annotations

from runners.base import Limits, Runner, TrialLimitExceeded


def make_runner(kind: str, workers: int, limits: Limits, preload: tuple[str, ...] = (), address: str | None = None) -> Runner:
    """A runner of `kind` ("thread", "process" or "dask") for `workers` concurrent jobs; the caller closes it."""
    if kind == "dask":
        from runners.dask import DaskRunner

        return DaskRunner(workers, limits, address, preload)
    if kind == "process":
        from runners.processes import ProcessRunner

        return ProcessRunner(workers, limits, preload)
    from runners.threads import ThreadRunner

    return ThreadRunner(limits)


__all__ = ["Limits", "Runner", "TrialLimitExceeded", "make_runner"]
