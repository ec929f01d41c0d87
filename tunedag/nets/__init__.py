"""PyTorch networks as tunable scikit-learn estimators (an MLP, a small CNN, or your own module).

`TorchClassifier` and `TorchRegressor` take every architecture and training choice as a plain
constructor parameter, so `model.estimator: tunedag.nets.TorchClassifier` and a search space over
`lr`, `width`, `dropout`, ... work like any scikit-learn model. `fit(X, y, on_epoch=...)` calls
`on_epoch(epoch, metrics)` after each epoch: the objective records learning curves and prunes there.
This package imports torch and scikit-learn only, never Prefect or MLflow.
"""

from tunedag.nets._estimator import TorchClassifier, TorchEstimator, TorchRegressor
from tunedag.nets._export import ExportedPredictor, InferenceModule, is_torch_model, to_inference_module, torch_estimator
from tunedag.nets._hypergrad import HypergradientOptimizer

__all__ = [
    "ExportedPredictor",
    "HypergradientOptimizer",
    "InferenceModule",
    "TorchClassifier",
    "TorchEstimator",
    "TorchRegressor",
    "is_torch_model",
    "to_inference_module",
    "torch_estimator",
]
