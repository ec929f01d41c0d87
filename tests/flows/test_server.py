"""Stage commands without a Prefect API share the project's own server (services.prefect_api), on localhost, in its own session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from services import prefect_api
from tests.flows.conftest import REPO, subprocess_env
from tunedag.config import load_config

TUNEDAG = str(Path(sys.executable).parent / "tunedag")


@pytest.mark.slow
def test_two_stage_commands_in_a_row_reuse_one_server_in_its_own_session_on_localhost_with_its_database_in_the_project(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(REPO / "prefect.toml", tmp_path / "prefect.toml")
    shutil.copytree(REPO / "data" / "raw", tmp_path / "data" / "raw")
    env = {k: v for k, v in subprocess_env().items() if k != "PREFECT_API_URL"}
    env.update(
        HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), **{prefect_api.IDLE_ENV: "60"}
    )  # ~/.prefect must stay untouched
    state = tmp_path / prefect_api.STATE_DIR
    try:
        runs = []
        for _ in range(2):
            done = subprocess.run(
                [TUNEDAG, "prepare"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
            )
            assert done.returncode == 0, done.stderr[-3000:]
            runs.append((done, prefect_api.read_state(state)))
        (first, one), (second, two) = runs
        assert one["server"] == two["server"] and one["supervisor"] == two["supervisor"], "the second stage reused the server"
        assert "Prefect API for this project on" in first.stderr and "Prefect API for this project" not in second.stderr
        assert "Beginning flow run" in second.stderr + second.stdout and "View at" not in second.stderr + second.stdout

        server = psutil.Process(one["server"])
        assert os.getsid(server.pid) != os.getsid(0) and os.getpgid(server.pid) != os.getpgid(0), (
            "Ctrl-C in the terminal never reaches it"
        )
        listening = {(c.laddr.ip, c.laddr.port) for c in server.net_connections() if c.status == psutil.CONN_LISTEN}
        assert listening == {("127.0.0.1", one["port"])}
        assert (state / "prefect.db").is_file() and not (tmp_path / "home" / ".prefect" / "prefect.db").exists()
        assert (tmp_path / load_config(tmp_path / "params.yaml").paths.prepared).is_file()
    finally:
        assert prefect_api.stop(tmp_path)
    assert not server.is_running() and prefect_api.read_state(state) is None


def test_the_projects_settings_give_a_temporary_server_time_to_migrate_a_new_database_on_a_busy_machine(tmp_path):
    """For a flow run outside the stage commands (no project server), Prefect starts its temporary one."""
    shutil.copy(REPO / "prefect.toml", tmp_path / "prefect.toml")
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("PREFECT_SERVER_EPHEMERAL")}
    probe = "from prefect.settings import get_current_settings as s; print(s().server.ephemeral.startup_timeout_seconds)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) >= 60  # Prefect's 20 s default was exceeded under a CI run's load


def test_the_project_servers_folder_is_ignored_by_git_and_dvc():
    assert "/.tunedag/" in (REPO / ".gitignore").read_text().splitlines()
    assert ".tunedag/" in (REPO / ".dvcignore").read_text().splitlines()
