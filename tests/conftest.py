"""Settings for the whole test suite."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tunedag.imports import ENV_ALLOWED

# The tests name their own estimators, train_fns and module factories (tests.support, tests.tunedag.nets):
# the test package is allowed as a user would allow theirs (model.allowed_modules, or this variable).
os.environ.setdefault(ENV_ALLOWED, "tests")


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], None]:
    """Put a copy of an empty MLflow SQLite store, its tables already created, where a `sqlite:///` URI points.

    Creating the tables runs MLflow's migrations: 2-4 s of CPU per new store, against a few ms for a copy. For
    tests whose subject is what gets recorded, not how a new store is made (tests/tracking/test_store.py
    and the end-to-end runs create theirs).
    """
    from mlflow import MlflowClient

    template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()  # the tables and the Default experiment

    def put(uri: str) -> None:
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, db)
        with contextlib.closing(sqlite3.connect(db)) as con, con:  # where MLflow puts the Default experiment: ./mlruns/0
            con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", [str(Path.cwd() / "mlruns" / "0")]
            )

    return put
