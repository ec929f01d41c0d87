"""The committed dvc.lock matches the code and params.yaml, so a fresh clone's `dvc repro` records a clean commit.

A stale lock makes the first `dvc repro` on a clone rewrite it while it runs, and every lineage
tag then reads `<sha>-dirty`. Regenerate it with `make run` (or `dvc repro`) and commit it after
any change to a stage's code, to dvc.yaml or to params.yaml.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tracked(path: str) -> bool:
    return bool(subprocess.run(["git", "ls-files", "--", path], cwd=REPO, capture_output=True, text=True, check=True).stdout)


def test_dvc_lock_matches_the_committed_code_and_params() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "status", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    stale = {}
    for stage, changes in json.loads(done.stdout or "{}").items():
        for change in changes if isinstance(changes, list) else []:
            deps = change.get("changed deps", {}) if isinstance(change, dict) else {}
            # Outputs of earlier stages (data/prepared, reports/tune) are absent from a clone: only git's files count.
            moved = {path: how for path, how in deps.items() if path == "params.yaml" or _tracked(path)}
            if moved:
                stale[stage] = moved
    assert not stale, f"dvc.lock is stale (run `dvc repro` and commit dvc.lock): {stale}"
