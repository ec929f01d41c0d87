"""The MLflow UI's Dataset column names the data a run read (issue 22), seen in a real headless Chromium.

The browser, the UI command and the helpers are those of tests/support/browser.py.
"""

from __future__ import annotations

import pytest

from flows.prepare import prepare_flow
from flows.tune import tune_flow
from tests.flows.ledger import load_study, study_runs
from tests.support.browser import _open, _wait_text, browser, shoot, start_mlflow_ui, stop  # noqa: F401 (fixtures)
from tests.support.browser import wait_for as _wait_for
from tracking.lineage import data_name
from tracking.store import client_for, open_tracker
from tunedag.problem import read_problem

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_the_runs_table_names_the_dataset_file_target_and_version(make_config, project, browser, shoot):  # noqa: F811
    cfg = make_config(tune__n_trials=2, tune__parallelism=1)
    open_tracker(cfg.tracking)  # the store exists (migrated) before the UI starts
    ui, url = start_mlflow_ui(project)
    try:
        prepare_flow(cfg)
        tune_flow(cfg)
        study = load_study(cfg)
        (parent,) = study_runs(cfg, study.study_name, "pipeline")
        (logged,) = client_for(cfg.tracking.uri).get_run(parent.info.run_id).inputs.dataset_inputs
        target = read_problem(cfg.paths.prepared).target
        assert data_name(cfg) in logged.dataset.name and target in logged.dataset.name, logged.dataset.name

        _wait_for(f"{url}/health", ui, project / "mlflow-ui.log")
        _open(browser, f"{url}/#/experiments/{parent.info.experiment_id}/runs")
        name = _wait_text(browser, parent.info.run_name)
        _wait_text(browser, "Dataset")  # the column's header
        shown = _wait_text(browser, logged.dataset.name, within=True)  # the data's name: its file (or source) and target
        assert f"({logged.dataset.digest})" in _row(shown).text, _row(shown).text  # with the data version (DVC md5)
        key = _row(shown).get_attribute("row-index")
        assert key is not None and key == _row(name).get_attribute("row-index"), "in the pipeline run's row"
        shoot(browser, "mlflow_dataset_column")
    finally:
        stop(ui)


def _row(cell):
    """The grid row holding `cell` (the grid renders a row's pinned name and its other columns as two row elements)."""
    return cell.find_element("xpath", "./ancestor::*[@role='row'][1]")
