"""A real PostgreSQL server for tests, from pgserver (a PyPI package that ships the binaries).

Its data folder is a `tempfile.mkdtemp()` folder, not one under pytest's `tmp_path`: run as root,
pgserver starts postgres as its own `pgserver` user and opens the folder's parents to it, and every
pytest session that starts meanwhile (another xdist run on the machine) closes /tmp/pytest-of-<user>
to its owner again (0700), which cut the server off from its files mid-test.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest


@contextmanager
def postgres_server() -> Iterator[object]:
    """A started pgserver `PostgresServer` for the block; stopped and its files removed after. Skips without pgserver."""
    try:
        import pgserver
    except ImportError:
        pytest.skip("PostgreSQL storage mode: pgserver is not installed (pip install -e '.[test]' brings it)")
    home = tempfile.mkdtemp(prefix="tunedag-pg-")
    server = pgserver.get_server(home, cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def execute(server, statement: str) -> None:
    """Run one SQL statement on the server's `postgres` database outside a transaction (CREATE / DROP DATABASE)."""
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(statement)
