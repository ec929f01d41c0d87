"""Importing any module of tunedag starts nothing: one thread, no child process, no server.

One fresh interpreter imports the third-party libraries (itself checked to hold one thread and no
child), then each module in turn, checking after each import. An import runs a module's top level
once, in whichever import reaches it first, and a thread or child it starts stays: so the first
import that starts one is named, as a fresh process per module would name it, without paying
tunedag's own imports once per module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The project's packages, as the install lists them: a new package cannot escape the checks.
PACKAGES = tuple(
    p.rstrip("*")
    for p in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
)
MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    for package in PACKAGES
    if (REPO / package).is_dir()
    for p in (REPO / package).rglob("*.py")
)
# The third-party modules the project's modules import (torch and sklearn's estimators most of all), imported
# first and themselves checked to start nothing, so that each module's check is about the project's own code.
LIBRARIES = (
    *("numpy", "pandas", "scipy.stats", "pyarrow.parquet", "jinja2", "typer", "cmaes", "torch", "distributed"),
    *(f"sklearn.{m}" for m in ("compose", "ensemble", "impute", "linear_model", "metrics", "model_selection", "pipeline")),
    *("sklearn.preprocessing", "optuna", "mlflow", "mlflow.pyfunc", "mlflow.sklearn", "prefect", "prefect.flows", "skops.io"),
)

DRIVER = """
import importlib, json, sys, threading, psutil

def state():
    return {"threads": [t.name for t in threading.enumerate()], "children": [c.cmdline() for c in psutil.Process().children(recursive=True)]}

libraries, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in libraries:
    importlib.import_module(name)
found = {"(libraries)": state()}
for module in modules:
    try:
        importlib.import_module(module)
        found[module] = state()
    except BaseException as exc:
        found[module] = {"error": repr(exc)}
print(json.dumps(found))
"""


def test_every_package_is_listed():
    assert {
        "flows.tune",
        "flows.cli",
        "tracking.store",
        "trials.job",
        "studies.storage",
        "services.prefect_api",
        "compat.optuna",
    } <= set(MODULES)


@pytest.mark.slow
def test_importing_any_module_starts_no_thread_and_no_process():
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(LIBRARIES), json.dumps(MODULES)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    clean = {"threads": ["MainThread"], "children": []}
    assert set(found) == {"(libraries)", *MODULES}
    before = [clean, *found.values()]
    # Each import that changed the state, named alone (the imports after it inherit its thread or child).
    assert {name: state for (name, state), prior in zip(found.items(), before) if state != prior} == {}
