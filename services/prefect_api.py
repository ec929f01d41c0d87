"""The project's Prefect API: one `prefect server start` that every stage command reuses, stopped when idle.

A flow run needs a Prefect API. Where Prefect's settings name none (no `PREFECT_API_URL`, no
profile), the first stage command starts one for the project and the next stages find it again;
it stops by itself once no stage has used it for `TUNEDAG_PREFECT_IDLE_S` seconds (default 120).
Everything lives under `<project>/.tunedag/prefect/`, never in `~/.prefect`:

- `server.json`: the supervisor's pid, the port and the API URL (`ready` once /health answered);
- `lease`: each stage holds a shared `flock` on it while it runs (the kernel drops it when the
  process dies, kill -9 included); the supervisor counts the server idle while it can lock it alone,
  and stops the server holding that exclusive lock, so no stage can lease a server being stopped;
- `start.lock`: held while a stage looks for a server or starts one: two stages, one server;
- `home/` (PREFECT_HOME), `prefect.db` (its database) and `server.log`.

The supervisor (this file run as a script: standard library only, so it starts in milliseconds)
runs in its own session, so Ctrl-C in the terminal or a signal to a stage's process group never
reaches the server; it starts `prefect server start --host 127.0.0.1` with public settings only,
writes `server.json` once the server answers, and stops it (SIGTERM, SIGKILL after 10 s) when idle.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

STATE_DIR = Path(".tunedag") / "prefect"
IDLE_ENV = "TUNEDAG_PREFECT_IDLE_S"  # seconds without a stage before the server stops
DEFAULT_IDLE_S = 120.0
STARTUP_TIMEOUT_S = 120.0  # a fresh database runs every migration first: 20-40 s on a busy 2-core machine
POLL_S = 0.25


class ServerError(RuntimeError):
    """The project's Prefect server did not start; the message names its log file."""


def server_env(state: Path) -> dict[str, str]:
    """The server's environment: its home and database under `state`, no analytics, no UI (public settings only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(
        PREFECT_HOME=str(state / "home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{state / 'prefect.db'}",
    )
    return env


def server_command(port: int) -> list[str]:
    """`prefect server start` on 127.0.0.1:`port`, run by this interpreter."""
    return [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]


def read_state(state: Path) -> dict[str, Any] | None:
    """`server.json`, or None when there is none (or it is half written)."""
    try:
        return json.loads((state / "server.json").read_text())
    except (OSError, ValueError):
        return None


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether the API at `url` answers /health (never through an HTTP proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_supervisor(pid: int, state: Path) -> bool:
    """Whether `pid` runs this file for `state` (a pid in a stale server.json may since belong to another program)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): the pid alone
        return alive(pid)
    return Path(__file__).name.encode() in b" ".join(command) and str(state).encode() in command


class Lease:
    """A stage's hold on the project's server: taken at once, the URL ready after `wait`, released by `release` or exit."""

    def __init__(self, project: Path, idle_s: float | None = None) -> None:
        self.state = (project / STATE_DIR).resolve()
        self.idle_s = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)) if idle_s is None else idle_s
        self.started = False  # whether this lease started the server
        self.state.mkdir(parents=True, exist_ok=True)
        self._lease: IO | None = open(self.state / "lease", "a+")  # noqa: SIM115 - held until `release`
        fcntl.flock(self._lease, fcntl.LOCK_SH)  # waits while a supervisor is stopping an idle server
        with open(self.state / "start.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = read_state(self.state)
            if found is None or not is_supervisor(found["supervisor"], self.state):
                found = self._start()
        self.url: str = found["url"]
        self.supervisor: int = found["supervisor"]

    def _start(self) -> dict[str, Any]:
        """Launch a supervisor (its own session) for a new server; return the state it wrote before detaching."""
        (self.state / "server.json").unlink(missing_ok=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        launcher = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), str(self.state), str(port), str(self.idle_s)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        found = read_state(self.state)
        if launcher.returncode != 0 or found is None:
            raise ServerError(f"The project's Prefect server could not be launched: {launcher.stderr.strip()[-500:]}")
        self.started = True
        return found

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """The API URL once the server answers; ServerError when its supervisor gave up or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = read_state(self.state)
            if found is not None and found.get("ready") and healthy(self.url):
                return self.url
            if not alive(self.supervisor):
                break
            time.sleep(POLL_S)
        raise ServerError(
            f"The project's Prefect server on {self.url} did not answer; see {self.state / 'server.log'}, "
            f"or set PREFECT_API_URL to a running Prefect server."
        )

    def release(self) -> None:
        """Let the server go idle (the kernel does the same when the process dies)."""
        if self._lease is not None:
            self._lease.close()
            self._lease = None


def stop(project: Path, timeout: float = 30.0) -> bool:
    """Stop the project's server now (as its supervisor does when idle); whether one was running."""
    state = (project / STATE_DIR).resolve()
    found = read_state(state)
    if found is None or not is_supervisor(found["supervisor"], state):
        return False
    os.kill(found["supervisor"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(found["supervisor"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


# --- the supervisor: `python prefect_api.py STATE PORT IDLE_S` (standard library only) ----------------


def _write_state(state: Path, record: dict[str, Any]) -> None:
    tmp = state / "server.json.tmp"
    tmp.write_text(json.dumps(record))
    tmp.replace(state / "server.json")


def _stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def supervise(state: Path, port: int, idle_s: float) -> int:
    """Run the server until no stage has held a lease for `idle_s` seconds, or it dies, or SIGTERM."""
    url = f"http://127.0.0.1:{port}/api"
    record = {"supervisor": os.getpid(), "port": port, "url": url, "ready": False}
    with open(state / "lease", "a+") as lease:
        server = subprocess.Popen(server_command(port), env=server_env(state), stdin=subprocess.DEVNULL)  # output: server.log
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        record["server"] = server.pid
        _write_state(state, record)
        idle_since = None
        try:
            while server.poll() is None and not stopping:
                if not record["ready"] and healthy(url):
                    record["ready"] = True
                    _write_state(state, record)
                try:
                    fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a stage holds a lease
                    idle_since = None
                    time.sleep(POLL_S)
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= idle_s:
                    break  # stopped below while holding the lock: a stage arriving now waits, then starts a new one
                fcntl.flock(lease, fcntl.LOCK_UN)
                time.sleep(POLL_S)
        finally:
            (state / "server.json").unlink(missing_ok=True)
            _stop_server(server)
    return 0


def _detach(state: Path, port: int, idle_s: float) -> int:
    """Fork the supervisor off (the launching stage does not wait for it) once it has written `server.json`."""
    read, write = os.pipe()
    if os.fork():
        os.close(write)
        os.read(read, 1)  # the supervisor wrote its state
        return 0
    os.close(read)
    log = os.open(state / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    _write_state(state, {"supervisor": os.getpid(), "port": port, "url": f"http://127.0.0.1:{port}/api", "ready": False})
    os.write(write, b"1")
    os.close(write)
    os._exit(supervise(state, port, idle_s))


if __name__ == "__main__":
    raise SystemExit(_detach(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
