"""The MLflow link a pipeline run ends with opens, in a fresh browser, on the run in MLflow's model-training layout.

MLflow 3.17's UI keeps its GenAI / model-training layout in the browser's local storage (GenAI when
unset) and lands there whatever the experiment's kind; the link names the layout. Chromium as in
tests/support/browser.py (a fresh profile: nothing stored).
"""

from __future__ import annotations

import pytest

from tasks.report import LOCAL_UI, run_url
from tests.support.browser import _wait_text, browser, start_mlflow_ui, stop  # noqa: F401 (browser: a fixture)
from tests.support.browser import wait_for as _wait_for
from tracking.runs import start_run
from tracking.store import EXPERIMENT_KIND, open_tracker

pytestmark = pytest.mark.slow


def test_the_printed_run_link_opens_the_run_among_runs_not_the_genai_view(make_config, project, browser):  # noqa: F811
    cfg = make_config()
    tracker = open_tracker(cfg.tracking)
    assert tracker.client.get_experiment(tracker.experiment_id).tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]
    name = "pipeline-tunedag-opens-on-runs"
    link = run_url(cfg.tracking.uri, tracker.experiment_id, start_run(tracker, name, {}).info.run_id)
    ui, url = start_mlflow_ui(project)
    try:
        _wait_for(f"{url}/health", ui, project / "mlflow-ui.log")
        browser.get(link.replace(LOCAL_UI, url))  # the summary's link, on this test's port
        _wait_text(browser, name)
        _wait_text(browser, "Model registry")  # the model-training side bar: Runs, Models, Traces, Model registry
        for genai in ("Sessions", "Judges", "Evaluations"):
            assert not _wait_text(browser, genai, present=False), f"the GenAI layout ({genai!r}) is shown"
    finally:
        stop(ui)
