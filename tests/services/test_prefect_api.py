"""The project's Prefect server (services.prefect_api): one per project, started once, kept while leased, stopped when idle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from services import prefect_api
from services.prefect_api import Lease, read_state, server_env

REPO = Path(__file__).resolve().parents[2]
HOLDER = (
    "import json, sys\nfrom pathlib import Path\nfrom services.prefect_api import Lease\n"
    "lease = Lease(Path(sys.argv[1]))\nprint(json.dumps({'supervisor': lease.supervisor, 'started': lease.started}), flush=True)\n"
    "print(lease.wait(), flush=True)\nsys.stdin.read()\n"
)


def _env(idle_s: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**env, "PYTHONPATH": str(REPO), prefect_api.IDLE_ENV: str(idle_s)}


def _holder(project: Path, idle_s: float) -> subprocess.Popen:
    """A stand-in for a stage: takes a lease on the project's server and holds it until its stdin closes."""
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project)], env=_env(idle_s), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.2)
    return False


def test_the_servers_home_and_database_are_under_the_project_and_its_settings_public(tmp_path):
    env = server_env(tmp_path / ".tunedag" / "prefect")

    assert env["PREFECT_HOME"] == str(tmp_path / ".tunedag" / "prefect" / "home")
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == f"sqlite+aiosqlite:///{tmp_path}/.tunedag/prefect/prefect.db"
    assert not any(k.startswith("PREFECT__") for k in env), "no private Prefect setting"
    assert prefect_api.server_command(4200)[-6:] == ["server", "start", "--host", "127.0.0.1", "--port", "4200"]


@pytest.mark.slow
def test_two_stages_at_once_start_one_server_which_a_killed_stage_does_not_keep_alive_and_which_stops_when_idle(tmp_path):
    holders = [_holder(tmp_path, idle_s=3) for _ in range(2)]  # launched together: they race for the start
    try:
        first = [json.loads(h.stdout.readline()) for h in holders]
        assert first[0]["supervisor"] == first[1]["supervisor"] and sorted(f["started"] for f in first) == [False, True]
        urls = [h.stdout.readline().strip() for h in holders]
        state = read_state(tmp_path / prefect_api.STATE_DIR)
        assert urls == [state["url"]] * 2 and state["ready"]
        server = psutil.Process(state["server"])
        assert os.getsid(server.pid) != os.getsid(0) and os.getpgid(server.pid) != os.getpgid(0), "its own session"
        assert "server" in server.cmdline() and "start" in server.cmdline()
        assert (tmp_path / ".tunedag" / "prefect" / "prefect.db").is_file()

        holders[0].kill()  # kill -9: the kernel drops its lease
        time.sleep(5)  # longer than the idle time: the other stage still holds its lease
        assert server.is_running()
        holders[1].kill()
        assert _gone(server.pid, 30), "stopped once no stage held a lease for 3 s"
        assert read_state(tmp_path / prefect_api.STATE_DIR) is None and _gone(state["supervisor"], 5)
    finally:
        for h in holders:
            h.kill()
            h.wait()
        if (found := read_state(tmp_path / prefect_api.STATE_DIR)) is not None:
            os.kill(found["supervisor"], signal.SIGTERM)


def test_a_stage_arriving_while_the_server_stops_waits_then_starts_a_new_one(tmp_path, monkeypatch):
    """The supervisor stops an idle server holding the lease file exclusively: a new lease waits for it, then starts afresh."""
    import fcntl
    import threading

    state = tmp_path / prefect_api.STATE_DIR
    state.mkdir(parents=True)
    (state / "server.json").write_text(
        json.dumps({"supervisor": os.getpid(), "port": 1, "url": "http://127.0.0.1:1/api", "ready": True})
    )
    monkeypatch.setattr(prefect_api, "is_supervisor", lambda pid, state: True)
    starts = []

    def start(self):  # as the real start: a fresh state; no process launched here
        starts.append(True)
        return {"supervisor": 2**22 + 1, "port": 2, "url": "http://127.0.0.1:2/api", "ready": False}

    monkeypatch.setattr(Lease, "_start", start)
    with open(state / "lease", "a+") as stopping:
        fcntl.flock(stopping, fcntl.LOCK_EX)  # the supervisor, stopping the server
        got = []
        waiter = threading.Thread(target=lambda: got.append(Lease(tmp_path)))
        waiter.start()
        time.sleep(0.5)
        assert got == [], "no lease on a server being stopped"
        (state / "server.json").unlink()  # the supervisor's last steps
    waiter.join(5)
    assert starts == [True] and got[0].url == "http://127.0.0.1:2/api"
    got[0].release()


def test_a_live_supervisor_is_found_again_and_a_stale_pid_is_not_taken_for_one(tmp_path, monkeypatch):
    state = tmp_path / prefect_api.STATE_DIR
    state.mkdir(parents=True)
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "prefect_api.py", str(state.resolve())])
    try:
        deadline = time.monotonic() + 30  # until its exec, the child still shows pytest's command line
        while "prefect_api.py" not in " ".join(psutil.Process(stand_in.pid).cmdline()) and time.monotonic() < deadline:
            time.sleep(0.05)
        (state / "server.json").write_text(
            json.dumps({"supervisor": stand_in.pid, "port": 1, "url": "http://127.0.0.1:1/api", "ready": True})
        )
        monkeypatch.setattr(Lease, "_start", lambda self: pytest.fail("started a second server"))
        lease = Lease(tmp_path)
        assert (lease.url, lease.started) == ("http://127.0.0.1:1/api", False)
        lease.release()
    finally:
        stand_in.kill()
        stand_in.wait()
    (state / "server.json").write_text(
        json.dumps({"supervisor": os.getpid(), "port": 1, "url": "http://127.0.0.1:1/api", "ready": True})
    )
    monkeypatch.setattr(Lease, "_start", lambda self: {"supervisor": 7, "port": 2, "url": "http://127.0.0.1:2/api"})
    assert Lease(tmp_path).url == "http://127.0.0.1:2/api", "this test process is alive but no supervisor"
