"""A fitted preprocessing + network pipeline as one self-contained torch module, for saving.

The sklearn preprocessing in front of a torch estimator is numeric imputation and scaling; the
exported module carries their fitted values as buffers, so the saved model needs torch alone
(no tunedag, no scikit-learn, no pickle) to predict from raw feature columns.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from tunedag.errors import ConfigError
from tunedag.nets._estimator import TorchClassifier, TorchEstimator


def is_torch_model(model: Any) -> bool:
    """True for a torch estimator, or a Pipeline whose last step is one."""
    last = model.steps[-1][1] if isinstance(model, Pipeline) else model
    return isinstance(last, TorchEstimator)


def torch_estimator(model: Any) -> TorchEstimator:
    """The fitted torch estimator at the end of `model`."""
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


class InferenceModule(nn.Module):
    """Raw float64 feature columns -> imputed -> scaled -> network -> probabilities (classifier) or values.

    A classifier outputs (N, n_classes) probabilities in the order of `classes`; a regressor (N,)
    predictions in the target's units.
    """

    def __init__(
        self,
        net: nn.Module,
        keep: torch.Tensor,
        fill: torch.Tensor,
        mean: torch.Tensor,
        scale: torch.Tensor,
        classifier: bool,
        y_mean: float = 0.0,
        y_scale: float = 1.0,
    ):
        super().__init__()
        self.net = net
        self.register_buffer("keep", keep)
        self.register_buffer("fill", fill)
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)
        self.classifier = classifier
        self.y_mean, self.y_scale = y_mean, y_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32).index_select(1, self.keep)
        x = torch.where(torch.isnan(x), self.fill, x)
        out = self.net((x - self.mean) / self.scale)
        if self.classifier:
            return torch.softmax(out, dim=1)
        return out[:, 0] * self.y_scale + self.y_mean


def to_inference_module(model: Any) -> InferenceModule:
    """The fitted pipeline (or bare estimator) as one CPU module in eval mode.

    Raises:
        ConfigError: the pipeline holds a step that cannot travel as torch buffers (e.g. one-hot
            encoding of categorical columns).
    """
    est = torch_estimator(model)
    n_in = est.n_features_in_
    keep, fill = np.arange(n_in), np.zeros(n_in)
    mean, scale = np.zeros(n_in), np.ones(n_in)
    if isinstance(model, Pipeline) and len(model.steps) > 1:
        keep, fill, mean, scale = _preprocessing(Pipeline(model.steps[:-1]))
    net = copy.deepcopy(est.module_).cpu().eval()
    extra = {} if isinstance(est, TorchClassifier) else {"y_mean": est.y_mean_, "y_scale": est.y_scale_}
    f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    module = InferenceModule(
        net, torch.as_tensor(keep, dtype=torch.long), f32(fill), f32(mean), f32(scale), isinstance(est, TorchClassifier), **extra
    )
    return module.eval()


def _preprocessing(pre: Pipeline) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kept columns, fill values, means, scales) of a fitted ColumnTransformer of imputation + scaling."""
    ((name, ct),) = pre.steps
    used = [(n, t, cols) for n, t, cols in getattr(ct, "transformers_", []) if t != "drop" and len(cols)]
    if not isinstance(ct, ColumnTransformer) or len(used) != 1 or used[0][0] != "num":
        kinds = ", ".join(n for n, _, _ in used)
        raise ConfigError(
            f"A torch model can be saved only behind numeric imputation and scaling; its preprocessing "
            f"has {kinds or name}. Torch estimators refuse categorical columns: encode them as numbers in the data."
        )
    _, steps, cols = used[0]
    n_in = len(cols)
    keep, fill, mean, scale = np.arange(n_in), np.zeros(n_in), np.zeros(n_in), np.ones(n_in)
    for step in steps.steps if isinstance(steps, Pipeline) else [("", steps)]:
        t = step[1]
        if isinstance(t, SimpleImputer):
            stats = np.asarray(t.statistics_, dtype=float)
            keep = np.arange(n_in) if t.keep_empty_features else np.flatnonzero(~np.isnan(stats))
            fill = np.nan_to_num(stats[keep])
            mean, scale = mean[keep], scale[keep]
        elif isinstance(t, StandardScaler):
            mean = t.mean_ if t.with_mean else np.zeros_like(mean)
            scale = t.scale_ if t.with_std else np.ones_like(scale)
        else:
            raise ConfigError(
                f"A torch model cannot be saved with the preprocessing step {type(t).__name__}; "
                "only SimpleImputer and StandardScaler travel with the network."
            )
    return keep, fill, mean, scale


class ExportedPredictor:
    """A saved inference module as an sklearn-like predictor: `predict`, and for a classifier
    `predict_proba` and `classes_` (what the evaluate stage scores on the test split)."""

    def __init__(self, module: Any, classes: list | None):
        self.module = module
        self.classes_ = None if classes is None else np.asarray(classes)

    def _run(self, X: Any) -> np.ndarray:
        x = torch.from_numpy(np.array(X, dtype=np.float64))  # a copy: the caller's array may be read-only
        with torch.no_grad():
            return self.module(x).numpy()

    @property
    def predict_proba(self):
        """Class probabilities (columns in `classes_` order); a regressor has none, so hasattr() is False."""
        if self.classes_ is None:
            raise AttributeError("a regressor has no predict_proba")

        def proba(X: Any) -> np.ndarray:
            out = self._run(X).astype(np.float64)
            return out / out.sum(axis=1, keepdims=True)  # float32 softmax rows sum to 1 only within rounding

        return proba

    def predict(self, X: Any) -> np.ndarray:
        out = self._run(X)
        return out.astype(np.float64) if self.classes_ is None else self.classes_[out.argmax(1)]
