"""Networks (tunedag.nets) as MLflow PyTorch model folders: one `torch.export` module (pt2) with the imputation and scaling.

Light to import: torch and MLflow's PyTorch flavour are imported when a network is saved or loaded.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any


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
