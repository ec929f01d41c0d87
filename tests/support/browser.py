"""A real headless Chromium against the MLflow UI that `make ui` starts, for tests/flows/test_default_run.py.

Chromium and its driver come from Debian's packages (`apt-get install -y chromium chromium-driver`;
.ci/run installs them). Screenshots are saved under tmp_path, and also under the folder named by
TUNEDAG_SCREENSHOTS when set (`TUNEDAG_SCREENSHOTS=docs/img` refreshes the ones in the docs).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.flows.conftest import REPO
from tests.flows.ledger import load_study, study_runs

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,860",
]
# MLflow UI preferences in the browser's local storage: the model-training layout, no assistant panel.
UI_PREFERENCES = {
    "mlflow.workflowType_v1": '"machine_learning"',
    "mlflow.assistant.panelOpen_v1": "false",
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
}
WAIT_S = 90


def _make_ui_command() -> list[str]:
    """The command of the Makefile's ui target, which must be `tunedag ui`, split into arguments."""
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^ui:.*\n\t(tunedag ui.*)$", makefile, re.MULTILINE)
    assert recipe, "the Makefile has no `ui:` target running `tunedag ui`"
    return shlex.split(recipe.group(1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_ui(project: Path) -> tuple[subprocess.Popen, str]:
    """`make ui`'s command (`tunedag ui`, which opens the store params.yaml names) in the project, on a free port."""
    port = _free_port()
    command = [str(Path(sys.executable).parent / "tunedag"), *_make_ui_command()[1:], "--port", str(port)]
    with (project / "mlflow-ui.log").open("w") as log:
        proc = subprocess.Popen(command, cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    """End the UI's process group (the server and its worker), by its id."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_for(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"mlflow ui exited: {log.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow ui did not answer {url} within {WAIT_S}s: {log.read_text()[-2000:]}")


@contextmanager
def chromium() -> Iterator[object]:
    """Headless Chromium from Debian's packages through its matching chromedriver (nothing downloaded)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "Chromium is not installed: apt-get install -y chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def screenshots(folder: Path) -> Callable[[object, str], Path]:
    """A function that saves a screenshot under `folder` (and TUNEDAG_SCREENSHOTS when set) and returns its path."""
    extra = os.environ.get("TUNEDAG_SCREENSHOTS")

    def save(driver, name: str) -> Path:
        path = folder / "screens" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(path))
        if extra:
            target = REPO / extra / f"{name}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
        assert path.stat().st_size > 10_000
        return path

    return save


def _wait_text(driver, text: str, present: bool = True, within: bool = False):
    """Wait for an element whose own text is `text` (or, `within`, contains it)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    literal = _xpath_literal(text)
    xpath = f"//*[text()[contains(., {literal})]]" if within else f"//*[normalize-space(text())={literal}]"
    wait = WebDriverWait(driver, WAIT_S)
    if present:
        return wait.until(lambda d: d.find_elements(By.XPATH, xpath) or False, f"{text!r} never appeared")[0]
    return driver.find_elements(By.XPATH, xpath)


def _xpath_literal(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'


def _open(driver, url: str) -> None:
    """Open a UI page with the model-training layout (set in local storage on the UI's origin)."""
    driver.get(url)
    for key, value in UI_PREFERENCES.items():
        driver.execute_script("window.localStorage.setItem(arguments[0], arguments[1])", key, value)
    driver.refresh()


def check_report_from_disk(browser, shoot, index: Path) -> None:
    browser.get(index.as_uri())
    images = browser.execute_script("return Array.from(document.images).map(i => [i.alt, i.naturalWidth])")
    assert len(images) >= 5 and all(width > 100 for _, width in images), images
    assert "Spread across CV folds" in [alt for alt, _ in images]
    shoot(browser, "report_index")
    browser.get(index.with_name("interactive.html").as_uri())
    drawn = browser.execute_script("return document.querySelectorAll('.plotly-graph-div .main-svg').length")
    assert drawn >= len(images), "plotly.js is inline: every interactive figure draws with no network"


def check_ui(browser, shoot, url: str, cfg) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    study = load_study(cfg)
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    experiment = parent.info.experiment_id
    trials = sorted(f"trial-{t.number}" for t in study.trials)

    _open(browser, f"{url}/#/experiments/{experiment}/runs")
    run_name = _wait_text(browser, parent.info.run_name)
    assert not _wait_text(browser, trials[0], present=False), "trials are nested: hidden until their pipeline run is expanded"
    cell = run_name.find_element(By.XPATH, "./ancestor::*[@role='gridcell'][1]")
    cell.find_element(By.CSS_SELECTOR, "button").click()
    for name in trials:
        _wait_text(browser, name)
    shoot(browser, "mlflow_experiment_runs")

    _open(browser, f"{url}/#/experiments/{experiment}/runs/{parent.info.run_id}/artifacts/report/index.html")
    frame = WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "iframe") or False, "the report never rendered in the run's artifact viewer"
    )[0]
    browser.switch_to.frame(frame)
    _wait_text(browser, f"Study {study.study_name}")
    browser.switch_to.default_content()
    shoot(browser, "mlflow_run_report")

    _open(browser, f"{url}/#/models/{cfg.final.registered_model}")
    _wait_text(browser, "Version 1")
    _wait_text(browser, "Aliases")
    _wait_text(browser, "champion", within=True)  # the evaluate stage gave the first version the alias
    shoot(browser, "mlflow_model_versions")


@pytest.fixture
def browser():
    """A headless Chromium with a fresh profile, for a test that names it."""
    with chromium() as driver:
        yield driver


@pytest.fixture
def shoot(tmp_path):
    """Save a named screenshot of the browser under the test's tmp_path."""
    return screenshots(tmp_path)
