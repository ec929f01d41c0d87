"""The report stage end to end: files on disk, artifacts on the pipeline run, the CLI summary, `dvc plots show`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flows.pipeline import pipeline_flow
from reporting import render as report
from tasks.report import REPORT_ARTIFACT, load_tuned_study, run_url
from tasks.tracking import client_for
from tests.flows.conftest import REPO, subprocess_env
from tests.flows.ledger import load_study, study_runs
from tunedag.errors import TunedagError


def _run(project: Path, *args: str) -> str:
    env = {**subprocess_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    done = subprocess.run(list(args), cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_a_summary_naming_a_study_the_storage_lacks_is_one_clear_error(make_config):
    cfg = make_config()
    with pytest.raises(TunedagError, match=r"tunedag-gone .*tune\.storage.*dvc repro tune"):
        load_tuned_study(cfg, {"study_name": "tunedag-gone"})


def test_run_links_point_at_the_server_or_at_make_ui():
    layout = "?workflowType=machine_learning"
    assert run_url("sqlite:///mlruns/mlflow.db", "3", "abc") == f"http://127.0.0.1:5000/#/experiments/3/runs/abc{layout}"
    assert run_url("https://mlflow.example/", "3", "abc") == f"https://mlflow.example/#/experiments/3/runs/abc{layout}"
    assert run_url("databricks", "3", "abc") is None


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_the_report_stage_writes_logs_and_summarises(make_config, project, capsys):
    cfg = make_config(data__cv_folds=3, data__val_size=0.0)
    scores = pipeline_flow(cfg)

    out = cfg.paths.report_dir
    study = load_study(cfg)
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    printed = capsys.readouterr().out
    assert f"tunedag: study {study.study_name}" in printed and f"runs/{parent.info.run_id}" in printed
    assert f"roc_auc={scores['test_roc_auc']:.5g}" in printed and str(out / report.INDEX) in printed

    figures = sorted(p.stem for p in (out / report.FIGURE_DIR).glob("*.png"))
    assert figures == sorted(
        ["optimization_history", "param_importances", "parallel_coordinate", "contour", "slice", "cv_fold_spread"]
    )
    page = (out / report.INDEX).read_text()
    assert page.count("data:image/png;base64,") == len(figures)
    assert not re.search(r"""<(script|img|link)[^>]+(src|href)=["']?https?:""", page), "index.html needs no network"
    complete = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    assert list(pd.read_csv(out / report.TRIALS_TABLE)["trial"]) == complete
    folds = pd.read_csv(out / report.FOLDS_TABLE)
    assert len(folds) == 3 * len(complete) and set(folds["fold"]) == {1, 2, 3}

    logged = {a.path for a in client_for(cfg.tracking.uri).list_artifacts(parent.info.run_id, REPORT_ARTIFACT)}
    assert {
        f"{REPORT_ARTIFACT}/{n}" for n in (report.INDEX, report.INTERACTIVE, report.FIGURE_DIR, report.TRIALS_TABLE)
    } <= logged

    # The DVC stage's command on the same project: it prints the summary, and `dvc plots show` renders the tables.
    stdout = _run(project, sys.executable, "-m", "flows.report", "--set", "data.cv_folds=3", "--set", "data.val_size=0.0")
    assert stdout.splitlines()[-1].startswith("  MLflow: `make ui`, then http://127.0.0.1:5000/#/experiments/")
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    _run(project, "dvc", "init", "--no-scm", "-q")
    shown = json.loads(_run(project, "dvc", "plots", "show", "--json"))["data"]
    for name in (report.TRIALS_TABLE, report.IMPORTANCES_TABLE, report.FOLDS_TABLE):
        (plot,) = shown[f"{out}/{name}"]
        assert plot["type"] == "vega" and plot["content"]["data"]["values"], name
    _run(project, "dvc", "plots", "show", "-o", "dvc_plots")
    assert (project / "dvc_plots" / "index.html").stat().st_size > 1000
