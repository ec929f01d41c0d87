"""The embedded MLflow store: write-ahead log, kept in the database file."""

from __future__ import annotations

import sqlite3

from tracking.store import open_tracker
from tunedag.config import TrackingConfig


def test_the_sqlite_store_is_in_wal_mode(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = open_tracker(TrackingConfig(uri=uri, artifact_root=str(tmp_path / "artifacts"), experiment="e"))
    run = tracker.client.create_run(tracker.experiment_id)
    tracker.client.log_metric(run.info.run_id, "m", 1.0)
    with sqlite3.connect(tmp_path / "mlflow.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert tracker.client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
