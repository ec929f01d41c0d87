"""Models as MLflow model folders: scikit-learn pipelines in skops format, networks as PyTorch models (modelio.torch_models).

Used wherever a model is written or read back: the trial workers, the final refit, the evaluation.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from compat.mlflow import check_requirements_once

MODEL_ARTIFACT = "model"  # the artifact path of a run's model folder
_TRUSTED: dict[str, list[str]] = {}  # per estimator and extra trusted types: the reviewed skops types seen in this process


@lru_cache(maxsize=1)
def pip_requirements() -> tuple[str, ...]:
    """Explicit requirements, so model logging skips MLflow's slow inference subprocess."""
    names = ("scikit-learn", "skops", "numpy", "scipy", "pandas")
    return tuple(f"{n}=={version(n)}" for n in names)


def save_model(model: Any, path: Path, extra_trusted: list[str], example: Any = None) -> None:
    """Write a fitted model as an MLflow model folder at `path`: a tunedag.nets network as PyTorch, else scikit-learn (skops).

    `example`: feature rows for the signature. A scikit-learn model's skops types take one more serialisation to
    find (refusing unreviewed types), so they are found for an estimator's first model in this process only, and
    again when MLflow refuses to load back a model holding a type beyond the remembered ones.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    from modelio.trust import skops_trusted_types
    from tunedag.estimators import is_torch_estimator_instance

    last = model.steps[-1][1] if hasattr(model, "steps") else model
    if is_torch_estimator_instance(last):
        from modelio.torch_models import save_torch_model

        return save_torch_model(model, path, input_example=example)
    signature = None if example is None else infer_signature(example, model.predict(example))
    key = f"{type(last).__module__}.{type(last).__qualname__} {sorted(extra_trusted)}"
    if key not in _TRUSTED:
        _TRUSTED[key] = skops_trusted_types(model, extra_trusted)
    try:
        save_sklearn_model(model, path, _TRUSTED[key], signature)
    except MlflowException as exc:
        if "untrusted types" not in str(exc):
            raise
        shutil.rmtree(path, ignore_errors=True)
        _TRUSTED[key] = sorted(set(_TRUSTED[key]) | set(skops_trusted_types(model, extra_trusted)))
        save_sklearn_model(model, path, _TRUSTED[key], signature)


def save_sklearn_model(model: Any, path: Path, trusted_types: list[str], signature: Any = None) -> None:
    """Write `model` as an MLflow sklearn model (skops format) at `path`."""
    import mlflow.sklearn

    import modelio.skops_io  # noqa: F401  (skops without its torch import, before MLflow imports it)

    check_requirements_once()

    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=trusted_types,
        pip_requirements=list(pip_requirements()),
        signature=signature,
    )
