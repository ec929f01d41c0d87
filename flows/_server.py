"""Prefect's temporary API server, started before a stage command's imports so that both run at once.

With no `PREFECT_API_URL`, Prefect starts a temporary server (uvicorn in a subprocess) when the
first flow runs: after the command's imports, and after importing its own server code in the
client. Here the same server process is launched first, while the command imports, and Prefect is
pointed at it for the run with `temporary_settings`. Where Prefect's settings name an API (a profile,
prefect.toml) or forbid the temporary server, the early one is stopped unused and Prefect decides.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Iterator

# The environment Prefect's own SubprocessASGIServer gives its server: no UI, services of an ephemeral server.
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}

_early: tuple[subprocess.Popen, int] | None = None
_served = False  # whether a flow ran on the early server (then it is stopped gracefully, never killed)


def server_command(port: int) -> list[str]:
    """The command Prefect runs for its temporary server (tests/flows/test_server.py holds it to Prefect's)."""
    app_dir = Path(find_spec("prefect").origin).parent.parent  # prefect.__module_path__.parent, without importing prefect
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]


def start_early() -> None:
    """Launch the temporary server now, unless `PREFECT_API_URL` is set in the environment (or one was launched)."""
    global _early, _served
    if _early is not None or os.environ.get("PREFECT_API_URL"):
        return
    _served = False
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(server_command(port), env={**os.environ, **SERVER_ENV})
    _early = (proc, port)
    atexit.register(_at_exit)


def discard_unused() -> None:
    """Kill the early server if no flow ran on it (the command stops on bad input).

    SIGKILL, not SIGTERM: a server stopped halfway through its start-up writes its shutdown errors
    to the command's terminal, after the one-paragraph message.
    """
    if not _served:
        stop_early(kill=True)


def _at_exit() -> None:
    """An unused server (a bad command line or config) is killed, a served one stopped gracefully."""
    discard_unused()
    stop_early()


def stop_early(kill: bool = False) -> None:
    """Stop the early server, as Prefect stops its own: SIGTERM, then SIGKILL after 5 s (at once with `kill`)."""
    global _early
    if _early is None:
        return
    proc, _ = _early
    _early = None
    if kill:
        proc.kill()
        proc.wait()
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def temporary_server() -> Iterator[None]:
    """Point Prefect at the early server for the block, when one was launched and Prefect would start its own."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    usable = _early is not None and not settings.api.url and settings.server.ephemeral.enabled
    url = _wait_until_healthy(settings.server.ephemeral.startup_timeout_seconds) if usable else None
    if url is None:
        stop_early()  # nothing launched, Prefect is configured otherwise, or it did not come up: Prefect decides
        yield
        return
    from prefect.logging import get_logger

    global _served
    _served = True
    get_logger().info("Temporary server on %s, started with the command (it stops when the command ends)", url)
    with temporary_settings({PREFECT_API_URL: url, PREFECT_UI_URL: ""}):  # it serves no UI: no "View at" links
        yield


def _wait_until_healthy(timeout: float) -> str | None:
    """The early server's API URL once /health answers; None if it exited or timed out."""
    proc, port = _early
    url = f"http://127.0.0.1:{port}/api"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with opener.open(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return url
        except OSError:
            time.sleep(0.05)
    return None
