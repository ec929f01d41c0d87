"""Prefect's temporary server started with a stage command: Prefect's own launch, used only when Prefect would start one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

from flows import _server
from tests.flows.conftest import REPO, subprocess_env
from tunedag.config import load_config


class FakeServer:
    """A stand-in for the uvicorn process: `exit_code` None while it runs."""

    def __init__(self, args, env):
        self.args, self.env, self.exit_code, self.terminated, self.killed = args, env, None, False, False

    def poll(self):
        return self.exit_code

    def terminate(self):
        self.terminated, self.exit_code = True, -15

    def kill(self):
        self.killed, self.exit_code = True, -9

    def wait(self, timeout=None):
        return self.exit_code


@pytest.fixture
def launched(monkeypatch):
    """Launches recorded instead of run; the module's state restored after the test."""
    calls: list[FakeServer] = []

    def popen(args, env=None, **kwargs):
        calls.append(FakeServer(args, env))
        return calls[-1]

    monkeypatch.setattr(_server.subprocess, "Popen", popen)
    monkeypatch.setattr(_server, "_early", None)
    monkeypatch.setattr(_server, "_served", False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return calls


def test_the_launch_is_the_one_prefect_runs_for_its_own_temporary_server(launched):
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer(port=8765)
    try:
        prefects = server._run_uvicorn_command()
    finally:
        server.server_process = None
        server.stop()
    assert _server.server_command(8765) == prefects.args
    assert {k: prefects.env[k] for k in _server.SERVER_ENV} == _server.SERVER_ENV


def test_nothing_is_launched_when_the_environment_names_an_api(launched, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    _server.start_early()
    assert launched == []


def test_the_early_server_is_stopped_unused_when_prefect_settings_name_an_api(launched, monkeypatch):
    monkeypatch.setattr(_server, "_wait_until_healthy", lambda timeout: pytest.fail("waited for a server it will not use"))
    _server.start_early()
    _server.start_early()  # a second call launches nothing more
    (proc,) = launched
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:1/api"}):
        with _server.temporary_server():
            assert PREFECT_API_URL.value() == "http://127.0.0.1:1/api"
    assert proc.terminated and _server._early is None


def test_a_server_that_never_comes_up_is_stopped_and_prefect_decides(launched, monkeypatch):
    monkeypatch.setattr(_server, "_wait_until_healthy", lambda timeout: None)
    _server.start_early()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with _server.temporary_server():
            assert PREFECT_API_URL.value() is None
    assert launched[0].terminated


def test_a_healthy_server_is_the_api_of_the_block_with_no_ui_links(launched, monkeypatch):
    monkeypatch.setattr(_server, "_wait_until_healthy", lambda timeout: "http://127.0.0.1:9/api")
    _server.start_early()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with _server.temporary_server():
            assert (PREFECT_API_URL.value(), PREFECT_UI_URL.value()) == ("http://127.0.0.1:9/api", "")
        assert PREFECT_API_URL.value() is None
    assert not launched[0].terminated  # it lives until the command exits
    _server.stop_early()
    assert launched[0].terminated


@pytest.mark.slow
def test_a_stage_command_with_no_api_runs_on_its_own_server_on_localhost_and_stops_it(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(REPO / "prefect.toml", tmp_path / "prefect.toml")
    shutil.copytree(REPO / "data" / "raw", tmp_path / "data" / "raw")
    env = {k: v for k, v in subprocess_env().items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    proc = subprocess.Popen([sys.executable, "-m", "flows.prepare"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen, listening = [], set()
    for line in proc.stdout:
        seen.append(line)
        if "Temporary server on" in line:  # the flow is about to run: the server is up
            for child in psutil.Process(proc.pid).children():
                listening |= {(c.laddr.ip, c.laddr.port) for c in child.net_connections() if c.status == psutil.CONN_LISTEN}
    assert proc.wait(timeout=120) == 0, "".join(seen)[-3000:]
    out = "".join(seen)
    url = re.search(r"Temporary server on (http://127\.0\.0\.1:(\d+)/api)", out)
    assert url and "Beginning flow run" in out and "View at" not in out, out[-3000:]
    assert listening and {ip for ip, _ in listening} == {"127.0.0.1"} and int(url.group(2)) in {p for _, p in listening}
    assert (tmp_path / load_config(tmp_path / "params.yaml").paths.prepared).is_file()
    with pytest.raises(OSError):  # stopped with the command
        urllib.request.urlopen(f"{url.group(1)}/health", timeout=2)


def test_the_projects_settings_give_a_temporary_server_time_to_migrate_a_new_database_on_a_busy_machine(tmp_path):
    shutil.copy(REPO / "prefect.toml", tmp_path / "prefect.toml")
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("PREFECT_SERVER_EPHEMERAL")}
    probe = "from prefect.settings import get_current_settings as s; print(s().server.ephemeral.startup_timeout_seconds)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) >= 60  # Prefect's 20 s default was exceeded under a CI run's load


def test_bad_input_kills_the_unused_server_before_the_message_and_a_served_one_is_left_to_stop_at_exit(launched, monkeypatch, project, capsys):
    from flows import _cli
    from tunedag.errors import ConfigError

    monkeypatch.setattr(_cli, "_EARLY", None)
    _server.start_early()

    def refused(cfg):
        assert False, "the run never starts on a config that does not load"

    assert _cli.execute(refused, "missing.yaml", []) == 2
    assert launched[0].killed and _server._early is None and "missing.yaml" in capsys.readouterr().err

    monkeypatch.setattr(_server, "_wait_until_healthy", lambda timeout: "http://127.0.0.1:9/api")
    _server.start_early()

    def fails_inside(cfg):
        raise ConfigError("refused inside the flow run")

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert _cli.execute(fails_inside, "params.yaml", []) == 2
    assert not launched[1].killed and not launched[1].terminated  # the flow's events drain; atexit stops it
    _server.stop_early()
    assert launched[1].terminated


def test_at_exit_an_unused_server_is_killed_and_a_served_one_stopped_gracefully(launched, monkeypatch):
    _server.start_early()  # then, say, argparse refuses the command line
    _server._at_exit()
    monkeypatch.setattr(_server, "_wait_until_healthy", lambda timeout: "http://127.0.0.1:9/api")
    _server.start_early()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with _server.temporary_server():
            pass
    _server._at_exit()
    assert (launched[0].killed, launched[0].terminated) == (True, False)
    assert (launched[1].killed, launched[1].terminated) == (False, True)
