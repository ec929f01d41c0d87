"""Real services for end-to-end tests: an `mlflow server` subprocess on 127.0.0.1, free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from flows.cli import UI_ENV  # the server as tunedag's own UI runs it (no job runner)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_mlflow_server(home: Path, port: int | None = None, timeout_s: float = 120) -> tuple[subprocess.Popen, str]:
    """Start `mlflow server` on 127.0.0.1 with a SQLite backend and artifact serving under `home`."""
    port = port or free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{home}/mlflow.db",
            "--artifacts-destination",
            str(home / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=UI_ENV | dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return proc, url
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                stop(proc)
                raise RuntimeError(f"mlflow server on port {port} did not start") from None
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started with start_new_session, its worker processes included."""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
