"""The default pipeline end to end, checked on ONE shared run (the session's `default_run`, tests/flows/conftest.py).

The read-only checks come first. The last tests write into the shared project (the report stage's
command run again, then the study extended by 5 trials), so they stay at the end of this file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from optuna.trial import TrialState

from flows.pipeline import pipeline_flow
from reporting import render as report
from tasks.report import REPORT_ARTIFACT
from tests.flows.conftest import REPO, DefaultRun, subprocess_env
from tests.flows.ledger import check_ledger, load_study, study_runs
from tests.support import browser as ui
from tracking.store import absolute_uri, client_for
from tracking.tags import TAG_DATA_VERSION, TAG_FLOW_RUN, TAG_GIT, TAG_STUDY
from tunedag.config import load_config
from tunedag.data import file_md5

pytestmark = pytest.mark.slow


def test_the_pipeline_records_every_trial_and_registers_the_model(in_default_run: DefaultRun):
    cfg, scores = in_default_run.cfg, in_default_run.scores

    study = check_ledger(cfg, n_complete=6)
    assert set(scores) >= {"test_accuracy", "test_roc_auc", "test_f1", "test_log_loss", "test_balanced_accuracy"}
    assert scores["test_roc_auc"] > 0.9
    children = study_runs(cfg, study.study_name, "trial")
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    data_version = file_md5(cfg.paths.prepared)
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags[TAG_DATA_VERSION] == data_version
        assert run.data.tags[TAG_GIT] and run.data.tags[TAG_FLOW_RUN] not in ("", "none")
    mlflow.set_tracking_uri(absolute_uri(cfg.tracking.uri))
    model = mlflow.pyfunc.load_model(f"runs:/{children[0].info.run_id}/model")
    X = pd.read_parquet(cfg.paths.prepared).drop(columns=["target", "__split__"]).head(5)
    assert len(model.predict(X)) == 5
    assert parent.data.metrics["test_roc_auc"] == scores["test_roc_auc"]
    (version,) = client_for(cfg.tracking.uri).search_model_versions(f"name = '{cfg.final.registered_model}'")
    final_run = client_for(cfg.tracking.uri).get_run(version.run_id)  # the version's own run, nested under the pipeline run
    assert final_run.data.tags["mlflow.parentRunId"] == parent.info.run_id and version.tags[TAG_STUDY] == study.study_name
    assert len(mlflow.pyfunc.load_model(f"models:/{cfg.final.registered_model}/{version.version}").predict(X)) == 5
    tune_metrics = json.loads(Path(cfg.paths.tune_metrics).read_text())
    assert tune_metrics["n_trials"] == 6 and tune_metrics["best_cv_roc_auc"] == study.best_value
    history = pd.read_csv(cfg.paths.history_plot)
    assert list(history["trial"]) == [t.number for t in study.trials if t.state == TrialState.COMPLETE]
    run = next(r for r in children if r.data.tags["tunedag.trial"] == "0")  # 3-fold cross-validation: one step a fold
    assert [m.step for m in client_for(cfg.tracking.uri).get_metric_history(run.info.run_id, "fold_roc_auc")] == [1, 2, 3]


def test_each_trial_is_told_only_after_its_run_and_model_are_written(in_default_run: DefaultRun):
    """The trial loop's order of record: when Optuna hears of a trial, its MLflow run is written and closed, its model saved."""
    told = in_default_run.told

    assert sorted(n for n, _, _ in told) == list(range(6))
    assert all(status == "FINISHED" and has_model for _, status, has_model in told), told


def test_the_report_stage_writes_its_files_logs_them_and_summarises(in_default_run: DefaultRun):
    cfg, scores = in_default_run.cfg, in_default_run.scores
    out = cfg.paths.report_dir
    study = load_study(cfg)
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    printed = in_default_run.printed
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


def test_cross_validated_scores_are_named_cv_from_the_trial_runs_to_the_report(in_default_run: DefaultRun):
    """data.cv_folds 3: every score of the study is a mean over folds, so none is named val_ (that is one validation split)."""
    cfg, client = in_default_run.cfg, client_for(in_default_run.cfg.tracking.uri)
    study = load_study(cfg)
    for run in study_runs(cfg, study.study_name, "trial"):
        assert run.data.metrics["cv_roc_auc"] == study.trials[int(run.data.tags["tunedag.trial"])].values[0]
        assert {"cv_log_loss", "cv_accuracy"} <= set(run.data.metrics) and not [k for k in run.data.metrics if "val_" in k]
    summary = json.loads(Path(cfg.paths.tune_summary).read_text())
    tune_metrics = json.loads(Path(cfg.paths.tune_metrics).read_text())
    test_metrics = json.loads(Path(cfg.paths.test_metrics).read_text())
    assert (
        summary["score_prefix"] == "cv" and tune_metrics["best_cv_roc_auc"] == test_metrics["best_cv_roc_auc"] == study.best_value
    )
    assert not [k for k in [*tune_metrics, *test_metrics] if k.startswith("best_val_")]
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    assert parent.data.metrics["best_cv_roc_auc"] == study.best_value and "best_val_roc_auc" not in parent.data.metrics
    (version,) = client.search_model_versions(f"name = '{cfg.final.registered_model}'")
    assert "best_cv_roc_auc" in version.tags and "best_val_roc_auc" not in version.tags
    assert f"cv roc_auc={study.best_value:.5g}" in in_default_run.printed and "val roc_auc=" not in in_default_run.printed
    assert "cross-validated roc_auc (best trial)" in (cfg.paths.report_dir / report.INDEX).read_text()


def test_the_report_opens_in_a_browser_and_the_ui_shows_runs_trials_and_model(in_default_run: DefaultRun, tmp_path):
    """A real headless Chromium: the report from disk, then the MLflow UI that `make ui` starts (tests/support/browser.py)."""
    project, cfg = in_default_run.project, in_default_run.cfg
    with ui.chromium() as browser:
        shoot = ui.screenshots(tmp_path)
        server, url = ui.start_mlflow_ui(project)
        try:
            ui.check_report_from_disk(browser, shoot, (cfg.paths.report_dir / report.INDEX).resolve())
            ui.wait_for(f"{url}/health", server, project / "mlflow-ui.log")
            ui.check_ui(browser, shoot, url, cfg)
        finally:
            ui.stop(server)


# ---------------------------------------------------------------- below: these write into the shared project


def _run(project: Path, *args: str) -> str:
    env = {**subprocess_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    done = subprocess.run(list(args), cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_the_report_stage_command_prints_the_summary_and_dvc_plots_show_renders_its_tables(in_default_run: DefaultRun):
    project, out = in_default_run.project, in_default_run.cfg.paths.report_dir

    stdout = _run(project, str(Path(sys.executable).with_name("tunedag")), "report")  # the DVC stage's command, on the same study
    assert stdout.splitlines()[-1].startswith("  MLflow: `make ui`, then http://127.0.0.1:5000/#/experiments/")
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    _run(project, "dvc", "init", "--no-scm", "-q")
    shown = json.loads(_run(project, "dvc", "plots", "show", "--json"))["data"]
    for name in (report.TRIALS_TABLE, report.IMPORTANCES_TABLE, report.FOLDS_TABLE):
        (plot,) = shown[f"{out}/{name}"]
        assert plot["type"] == "vega" and plot["content"]["data"]["values"], name
    _run(project, "dvc", "plots", "show", "-o", "dvc_plots")
    assert (project / "dvc_plots" / "index.html").stat().st_size > 1000


def test_raising_n_trials_adds_exactly_the_difference(in_default_run: DefaultRun):
    cfg = load_config(in_default_run.project / "params.yaml", {"tune.n_trials": 11})
    pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=11)
    parents = sorted(study_runs(cfg, study.study_name, "pipeline"), key=lambda r: r.info.start_time)
    second = [
        r for r in study_runs(cfg, study.study_name, "trial") if r.data.tags["mlflow.parentRunId"] == parents[1].info.run_id
    ]
    assert len(parents) == 2 and len(second) == 5
    assert len(client_for(cfg.tracking.uri).search_model_versions(f"name = '{cfg.final.registered_model}'")) == 2
