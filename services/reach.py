"""A database or tracking server named by URI answers, checked once and fast, before a library retries it for minutes.

MLflow's SQLAlchemy store retries an unreachable `postgresql://` for about 100 s, and its REST client
an unreachable `http://` tracking server for about two minutes, and then fail with tracebacks; one
TCP connect with a short timeout says the same in one paragraph.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from tunedag.errors import ConfigError, redact

DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
SERVER_PORTS = {"http": 80, "https": 443}


def check_reachable(uri: str, key: str, timeout: float = 3.0) -> None:
    """Raise ConfigError naming `key` when the server of a database or http(s) URI does not accept a TCP connection in `timeout` s.

    URIs of other kinds (sqlite, a file path) and database URIs without a host (a local socket)
    pass unchecked.
    """
    parts = urlsplit(uri)
    dialect = parts.scheme.split("+")[0].lower()
    ports = DEFAULT_PORTS | SERVER_PORTS
    if dialect not in ports:
        return
    try:
        host, port = parts.hostname, parts.port or ports[dialect]
    except ValueError:  # a port that is not a number
        raise ConfigError(f"{key} {redact(uri)} has a port that is not a number") from None
    if not host:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ConfigError(
            f"{key} {redact(uri)}: the {'tracking' if dialect in SERVER_PORTS else 'database'} server at {host}:{port} cannot be reached ({reason}, "
            f"one attempt, {timeout:g} s); start it or fix {key}. Nothing was written."
        ) from None
