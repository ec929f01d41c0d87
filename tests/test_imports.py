"""Importing any module of tunedag starts nothing: one thread, no child process, no server.

Each module is imported in a fresh process of its own, forked from an interpreter that has imported
only the third-party libraries (itself checked to hold one thread and no child), so that each
import costs only tunedag's own code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "tunedag", "services", "compat", "runners", "studies", "integrity", "modelio", "reporting")
MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    for package in PACKAGES
    if (REPO / package).is_dir()
    for p in (REPO / package).rglob("*.py")
)
# The third-party modules the project's modules import (torch and sklearn's estimators most of all), so
# that a child's import costs the project's own code; importing them is itself checked to start nothing.
LIBRARIES = (
    *("numpy", "pandas", "scipy.stats", "pyarrow.parquet", "jinja2", "typer", "cmaes", "torch", "distributed"),
    *(f"sklearn.{m}" for m in ("compose", "ensemble", "impute", "linear_model", "metrics", "model_selection", "pipeline")),
    *("sklearn.preprocessing", "optuna", "mlflow", "mlflow.pyfunc", "mlflow.sklearn", "prefect", "prefect.flows", "skops.io"),
)

DRIVER = """
import importlib, json, os, sys, threading, psutil

def state():
    return {"threads": [t.name for t in threading.enumerate()], "children": [c.cmdline() for c in psutil.Process().children(recursive=True)]}

libraries, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in libraries:
    importlib.import_module(name)
found = {"(libraries)": state()}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            result = state()
        except BaseException as exc:
            result = {"error": repr(exc)}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found[module] = json.loads(pipe.read())
    os.waitpid(pid, 0)
print(json.dumps(found))
"""


def test_every_package_is_listed():
    assert {"flows.tune", "flows.cli", "tasks.tracking", "studies.storage", "services.prefect_api", "compat.optuna"} <= set(
        MODULES
    )


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
    assert {name: state for name, state in found.items() if state != clean} == {}
