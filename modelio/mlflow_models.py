"""Models as MLflow model folders: scikit-learn pipelines in skops format, networks as PyTorch (torch.export) models.

Used wherever a model is written or read back: the trial workers, the final refit, the evaluation.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

MODEL_ARTIFACT = "model"  # the artifact path of a run's model folder
_TRUSTED: dict[str, list[str]] = {}  # per estimator and extra trusted types: the reviewed skops types seen in this process

_REQUIREMENTS_CHECKED: set[tuple[str, ...]] = set()


def _check_requirements_once() -> None:
    """Let MLflow compare a model's requirements with the installed packages once per process, not per save (60% of its time)."""
    import mlflow.utils.environment as env

    check = env.warn_dependency_requirement_mismatches
    if getattr(check, "tunedag_once", False):
        return

    def once(model_requirements: list[str]) -> None:
        key = tuple(model_requirements)
        if key not in _REQUIREMENTS_CHECKED:
            check(model_requirements)
            _REQUIREMENTS_CHECKED.add(key)

    once.tunedag_once = True  # type: ignore[attr-defined]
    env.warn_dependency_requirement_mismatches = once


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

    _check_requirements_once()

    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=trusted_types,
        pip_requirements=list(pip_requirements()),
        signature=signature,
    )


def save_torch_model(model: Any, path: Path, signature: Any = None, input_example: Any = None) -> None:
    """Write a fitted torch pipeline (tunedag.nets) with its imputation and scaling as one `torch.export` module (pt2) at `path`.

    `mlflow.pyfunc.load_model(path).predict(features)` takes the raw float64 feature columns and returns class
    probabilities (in the order of the `classes` metadata) or predictions; `load_torch_model` gives labels too.
    `input_example`: feature rows to trace with (zeros when None); `signature`: inferred from the example when None.
    """
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    from modelio.room import ensure_room
    from tunedag.nets import to_inference_module, torch_estimator

    module, est = to_inference_module(model), torch_estimator(model)
    n_features = getattr(model, "n_features_in_", est.n_features_in_)
    example = np.zeros((2, n_features)) if input_example is None else np.array(input_example, np.float64)[:20].copy()
    example = np.concatenate([example, example]) if len(example) < 2 else example  # a batch of 1 would fix the size
    with torch.no_grad():
        out = module(torch.from_numpy(example)).numpy()
    weights = [*module.parameters(), *module.buffers()]
    ensure_room(Path(path), sum(t.numel() * t.element_size() for t in weights))
    classes = getattr(est, "classes_", None)
    metadata = {
        "tunedag_task": "classification" if classes is not None else "regression",
        "classes": None if classes is None else classes.tolist(),
    }
    mlflow.pytorch.save_model(
        module,
        str(path),
        serialization_format="pt2",
        input_example=example,
        signature=signature or infer_signature(example, out),
        metadata=metadata,
        pip_requirements=[f"torch=={version('torch')}", f"numpy=={version('numpy')}"],
    )


def load_torch_model(path: Path | str) -> Any:
    """A saved torch model as a predictor with `predict` (labels), and `predict_proba` / `classes_` for a classifier."""
    from modelio.torch_trust import load_torch_module  # unpickles nothing; refuses a folder it cannot load so
    from tunedag.nets import ExportedPredictor

    module, meta = load_torch_module(Path(path))
    return ExportedPredictor(module, meta.get("classes"))
