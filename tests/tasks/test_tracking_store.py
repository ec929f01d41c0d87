"""The embedded MLflow store: write-ahead log with synchronous=NORMAL; its code imported, or the store opened, ahead when asked."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import text

from tasks.tracking import client_for, open_tracker
from tunedag.config import TrackingConfig


def test_the_sqlite_store_is_in_wal_mode_and_its_connections_sync_normally(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = open_tracker(TrackingConfig(uri=uri, artifact_root=str(tmp_path / "artifacts"), experiment="e"))
    run = tracker.client.create_run(tracker.experiment_id)
    tracker.client.log_metric(run.info.run_id, "m", 1.0)

    engine = client_for(uri)._tracking_client.store.engine
    with engine.connect() as con:
        assert con.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert con.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL (FULL is 2)
    assert tracker.client.get_run(run.info.run_id).data.metrics == {"m": 1.0}


@pytest.mark.parametrize(("uri", "imported"), [("sqlite:///x.db", True), ("postgresql://u@127.0.0.1:1/db", True),
                                               ("http://127.0.0.1:1", False)], ids=["sqlite", "postgresql", "server"])
def test_preload_store_imports_the_database_store_only_for_a_database(tmp_path, uri, imported):
    code = ("import json, sys, threading; from tasks.tracking import preload_store; preload_store(sys.argv[1]); "
            "[t.join() for t in threading.enumerate() if t.name == 'tunedag-import-store']; "
            "print(json.dumps('mlflow.store.tracking.sqlalchemy_store' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, uri], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) is imported
    assert list(tmp_path.iterdir()) == []  # nothing opened or written


def test_open_store_early_creates_the_sqlite_store_whole_even_when_the_command_exits_at_once(tmp_path):
    code = "import sys; from tasks.tracking import open_store_early; open_store_early(sys.argv[1])"  # no join: exit at once
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    subprocess.run([sys.executable, "-c", code, uri], cwd=tmp_path, capture_output=True, text=True, check=True)
    reference = tmp_path / "reference.db"
    client_for(f"sqlite:///{reference}")

    def schema(db) -> tuple:
        with sqlite3.connect(db) as con:
            return (con.execute("SELECT version_num FROM alembic_version").fetchall(),
                    con.execute("SELECT name FROM experiments").fetchall())

    assert schema(tmp_path / "new" / "mlflow.db") == schema(reference)  # every migration, and the Default experiment


@pytest.mark.parametrize("uri", ["postgresql://u@127.0.0.1:1/db", "http://127.0.0.1:1"], ids=["postgresql", "server"])
def test_open_store_early_opens_nothing_but_the_embedded_store(tmp_path, uri):
    code = ("import json, sys, threading; from tasks.tracking import open_store_early; open_store_early(sys.argv[1]); "
            "print(json.dumps(sorted(t.name for t in threading.enumerate() if t.name.startswith('tunedag-'))))")
    done = subprocess.run([sys.executable, "-c", code, uri], cwd=tmp_path, capture_output=True, text=True, check=True)
    expected = ["tunedag-import-store"] if uri.startswith("postgresql") else []
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected
    assert list(tmp_path.iterdir()) == []
