"""`dvc repro` runs the stages from dvc.yaml, is a no-op right after, and re-runs only what a change touches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.flows.conftest import REPO, SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, study_runs
from tasks.tracking import TAG_DATA_VERSION
from tunedag.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _dvc(project: Path, *args: str) -> str:
    env = {**subprocess_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["dvc", *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def _clone(tmp_path: Path) -> Path:
    """The repository's files (as a fresh clone would have them) in a new git repository."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    project = tmp_path / "project"
    for name in files:
        if (REPO / name).is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["tune"].update(n_trials=SHRINK["tune.n_trials"], parallelism=2)
    raw["search_space"]["n_estimators"] = SHRINK["search_space.n_estimators"]
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(["git", *cmd], cwd=project, check=True, capture_output=True)
    return project


def test_dvc_repro_runs_the_pipeline_then_does_nothing_then_reruns_only_tuning(tmp_path, monkeypatch):
    project = _clone(tmp_path)
    _dvc(project, "repro")

    metrics = json.loads(_dvc(project, "metrics", "show", "--json"))
    shown = next(iter(metrics.values()))["data"]
    assert {"metrics/tune.json", "metrics/test.json"} <= set(shown)
    assert "test_roc_auc" in shown["metrics/test.json"]["data"] and "best_val_roc_auc" in shown["metrics/tune.json"]["data"]
    assert "Data and pipelines are up to date" in _dvc(project, "repro")

    monkeypatch.chdir(project)
    cfg = load_config("params.yaml")
    study = check_ledger(cfg, n_complete=SHRINK["tune.n_trials"])
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    prepared_md5 = next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == str(cfg.paths.prepared))
    assert {r.data.tags[TAG_DATA_VERSION] for r in study_runs(cfg, study.study_name, "trial")} == {prepared_md5}

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["search_space"]["max_depth"]["high"] = 12
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    dry = _dvc(project, "repro", "--dry")
    assert "Stage 'prepare' didn't change" in dry and "Running stage 'tune'" in dry
