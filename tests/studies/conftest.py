"""The storages tunedag runs a study on, as Optuna's own tests name theirs (optuna.testing.storages.STORAGE_MODES).

Every test that takes `storage_url` runs once per mode: Optuna's journal file (the default
`tune.storage`) and PostgreSQL (the shared storage of docs/parallel.md), a real server from
pgserver, one per test session, with a fresh database per test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import execute, postgres_server

# PostgreSQL is a real server (seconds to start, a database a test): with the slow set, as the end-to-end runs are.
STORAGE_MODES = ["journal", pytest.param("postgresql", marks=pytest.mark.slow)]
TEMPLATE = "contract_template"
_DATABASES = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session, with a template database that holds Optuna's tables."""
    from optuna.storages import RDBStorage

    with postgres_server() as server:
        execute(server, f"CREATE DATABASE {TEMPLATE}")
        RDBStorage(server.get_uri(TEMPLATE)).engine.dispose()  # the schema made once, copied into each test's database
        yield server


@pytest.fixture(params=STORAGE_MODES)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """`tune.storage` for a new, empty storage of the mode: a journal path, or a PostgreSQL URL of a new database."""
    if request.param == "journal":
        yield str(tmp_path / "optuna" / "study.journal")
        return
    server = request.getfixturevalue("postgres")
    name = f"contract_{next(_DATABASES)}"
    execute(server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield server.get_uri(name)
    execute(server, f"DROP DATABASE {name} WITH (FORCE)")  # closes what the test's engines left open
