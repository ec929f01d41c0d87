"""A database named by URI answers, checked once and fast, before a library retries it for minutes.

MLflow's SQLAlchemy store retries an unreachable `postgresql://` for about 100 s and then fails
with four tracebacks; one TCP connect with a short timeout says the same in one paragraph.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from tunedag.errors import ConfigError, redact

DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


def check_database_reachable(uri: str, key: str, timeout: float = 3.0) -> None:
    """Raise ConfigError naming `key` when the server of a database URI does not accept a TCP connection in `timeout` s.

    URIs of other kinds (sqlite, a file path, http) and database URIs without a host (a local
    socket) pass unchecked.
    """
    parts = urlsplit(uri)
    dialect = parts.scheme.split("+")[0].lower()
    if dialect not in DEFAULT_PORTS:
        return
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PORTS[dialect]
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
            f"{key} {redact(uri)}: the database server at {host}:{port} cannot be reached ({reason}, "
            f"one attempt, {timeout:g} s); start it or fix {key}. Nothing was written."
        ) from None
