"""No module outside compat/ names a private part of Optuna, MLflow, Prefect or skops.

A private module in an import or a dotted name (`optuna.storages._cached_storage`), and the private
attributes tunedag once reached for on those libraries' objects (`study._storage`, `trial._trial_id`,
`client._tracking_client`), are searched for in every module of the project's packages.
"""

from __future__ import annotations

import re

from tests.test_imports import MODULES, REPO

LIBRARIES = "optuna|mlflow|prefect|skops"
PRIVATE = re.compile(
    rf"\b(?:{LIBRARIES})(?:\.\w+)*\._[a-z]\w*"  # a private module or name under the library
    r"|\.(?:_storage|_trial_id|_study_id|_cached_frozen_trial|_tracking_client|_persist|_file_path)\b"  # a private attribute
)


def _found(text: str) -> list[str]:
    return [m.group(0) for m in PRIVATE.finditer(text)]


def test_the_search_finds_each_kind_of_private_name():
    assert _found("from optuna.storages._cached_storage import _CachedStorage") == ["optuna.storages._cached_storage"]
    assert _found("store = client._tracking_client.store") == ["._tracking_client"]
    assert _found("number = trial._trial_id") == ["._trial_id"]
    assert _found("import mlflow.tracking._tracking_service") == ["mlflow.tracking._tracking_service"]
    assert _found("from optuna.trial import TrialState; mlflow.log_metric('x', 1)") == []


def test_no_module_outside_compat_names_a_private_part_of_these_libraries():
    files = [REPO / (m.replace(".", "/") + ".py") for m in MODULES if not m.startswith("compat")]
    files = [f if f.is_file() else f.with_suffix("") / "__init__.py" for f in files]
    assert len(files) > 80 and all(f.is_file() for f in files)
    found = {str(f.relative_to(REPO)): hits for f in files if (hits := _found(f.read_text()))}
    assert found == {}, f"private names outside compat/ (move them to compat/<library>.py with a version test): {found}"
