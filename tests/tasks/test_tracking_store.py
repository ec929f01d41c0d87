"""The embedded MLflow store: write-ahead log with synchronous=NORMAL; its code imported ahead when asked."""

from __future__ import annotations

import json
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
