"""The report stage's summary and links; its run end to end is checked on the shared default run (test_default_run.py)."""

from __future__ import annotations

import pytest

from tasks.report import load_tuned_study, run_url
from tunedag.errors import TunedagError


def test_a_summary_naming_a_study_the_storage_lacks_is_one_clear_error(make_config):
    cfg = make_config()
    with pytest.raises(TunedagError, match=r"tunedag-gone .*tune\.storage.*dvc repro tune"):
        load_tuned_study(cfg, {"study_name": "tunedag-gone"})


def test_run_links_point_at_the_server_or_at_make_ui():
    layout = "?workflowType=machine_learning"
    assert run_url("sqlite:///mlruns/mlflow.db", "3", "abc") == f"http://127.0.0.1:5000/#/experiments/3/runs/abc{layout}"
    assert run_url("https://mlflow.example/", "3", "abc") == f"https://mlflow.example/#/experiments/3/runs/abc{layout}"
    assert run_url("databricks", "3", "abc") is None
