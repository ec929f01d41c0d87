"""Nothing outside the project: MLflow's usage telemetry (an installation id under ~/.config, reports over the network)
is off in every tunedag command unless the user turned it on."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.flows.conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from flows._cli import execute

    if sys.argv[1] != "unset":
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = sys.argv[1]

    def run(cfg):
        from mlflow import MlflowClient

        MlflowClient(cfg.tracking.uri).create_experiment("probe")  # an MLflow call its telemetry records

    raise SystemExit(execute(run, "params.yaml", []))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "written"), [("unset", False), ("false", True)])
def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on(tmp_path: Path, setting: str, written: bool):
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO)}  # no CI or pytest variables: MLflow skips
    done = subprocess.run(  # its telemetry under those, which would hide the default
        [sys.executable, "-c", SCRIPT, setting], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (project / "mlruns").exists(), "the probe reached MLflow"
    assert (home / ".config" / "mlflow").exists() == written, sorted(p.relative_to(home) for p in home.rglob("*"))
