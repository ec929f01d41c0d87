"""The three layers hold: the ML logic imports neither Prefect nor MLflow, only tasks/ and flows/ import Prefect, and
every module of tasks/ is a Prefect task's home.

One fresh interpreter imports every module of the ML layer and notes which of Prefect and MLflow came in, then every
module of the runtime and adapter packages, and notes again: an import at any depth counts, as it would for a user.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
from prefect import Task

from tests.test_imports import MODULES, PACKAGES, REPO

ML = ("tunedag",)
WIRING = ("tasks", "flows")
PROBE = """
import importlib, json, sys
found = {}
for layer in json.loads(sys.argv[1]):
    for module in layer["modules"]:
        importlib.import_module(module)
    found[layer["name"]] = sorted(name for name in ("prefect", "mlflow") if name in sys.modules)
print(json.dumps(found))
"""


def _modules(packages: tuple[str, ...]) -> list[str]:
    return [m for m in MODULES if m.split(".")[0] in packages]


@pytest.mark.slow
def test_the_ml_layer_imports_neither_prefect_nor_mlflow_and_the_adapters_do_not_import_prefect():
    adapters = tuple(p for p in PACKAGES if p not in ML + WIRING)
    assert {"runners", "trials", "tracking", "studies", "modelio"} <= set(adapters)
    layers = [{"name": "ml", "modules": _modules(ML)}, {"name": "adapters", "modules": _modules(adapters)}]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(layers)], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    found = json.loads(done.stdout)
    assert found["ml"] == [], f"the ML layer imported {found['ml']}"
    assert found["adapters"] == ["mlflow"], f"the runtime and adapter packages imported {found['adapters']}, not MLflow alone"


def test_every_module_of_tasks_holds_a_prefect_task():
    for name in _modules(("tasks",)):
        module = importlib.import_module(name)
        if name == "tasks":
            continue
        tasks = [v for v in vars(module).values() if isinstance(v, Task) and v.fn.__module__ == name]
        assert tasks, f"{name} defines no Prefect task: helpers belong in the package they serve, not in tasks/"
