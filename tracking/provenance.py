"""Where a result came from: the code version, the Prefect run and the process that produced it."""

from __future__ import annotations

import subprocess
from functools import lru_cache

from tracking.tags import TAG_DATA_VERSION, TAG_FLOW_RUN, TAG_GIT, TAG_STUDY


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD's commit, suffixed `-dirty` when tracked files have uncommitted changes; `unknown` outside git.

    dvc.lock does not count: `dvc repro` rewrites it after each stage, so the later stages of a
    reproduction from a clean checkout would otherwise call their own code dirty.
    """
    try:
        head = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(exclude,top,glob)**/dvc.lock")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10).stdout.strip()


def prefect_flow_run_id() -> str:
    """The id of the Prefect flow run this code runs in, or `none` outside one."""
    from prefect.runtime import flow_run

    return str(flow_run.id or "none")


def lineage_tags(study_name: str, data_version: str) -> dict[str, str]:
    """Tags linking a run to its study, data version, code version and Prefect flow run."""
    return {TAG_STUDY: study_name, TAG_DATA_VERSION: data_version, TAG_GIT: git_commit(), TAG_FLOW_RUN: prefect_flow_run_id()}
