"""PyTorch networks as scikit-learn estimators: every architecture and training choice a plain parameter.

Because they are estimators, the rest of tunedag (config by import path, search space, the
preprocessing pipeline, metrics, CV, final refit) uses them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from tunedag.nets import _modules, _training
from tunedag.nets._training import LR_SCHEDULES, OPTIMIZERS, EpochHook


class TorchEstimator(BaseEstimator):
    """The shared parameters and training of `TorchClassifier` and `TorchRegressor`.

    Args:
        architecture: 'mlp' (tabular) or 'cnn' (images given as flat columns, see `image_shape`).
        hidden_layers: hidden Linear blocks of the MLP, or conv blocks of the CNN.
        width: units of each hidden Linear layer (the CNN's dense layer too).
        activation: relu, gelu, tanh, elu, silu or leaky_relu.
        dropout: dropout probability after each hidden activation (0: none).
        batch_norm: batch normalisation before each hidden activation.
        image_shape: [C, H, W] (or [H, W]) of one image for the CNN; the flat input columns are reshaped.
        channels: channels of the CNN's first conv block, doubling each block.
        optimizer: 'sgd' (with `momentum`), 'adam' or 'adamw'.
        lr, momentum, weight_decay, batch_size, epochs: the usual optimisation settings.
        lr_schedule: 'none', 'cosine' (to 0 over `epochs`), 'step' (halve every epochs/4) or 'exponential' (to 1%).
        early_stopping_patience: stop after this many epochs without a lower validation loss and keep the
            best weights; None trains all `epochs`.
        validation_fraction: share of the rows given to `fit` held out (seeded, stratified) for the
            per-epoch validation loss and metric and for early stopping; 0 holds none out.
        hypergradient_beta: None for a fixed rate; a value turns on hypergradient descent on the rate
            (SGD-HD / Adam-HD, Baydin et al. 2018): lr is then the initial rate and lr_schedule must be 'none'.
        module_factory: "package.module:function" returning your own nn.Module; called with
            (n_features, n_outputs) plus those of hidden_layers, width, activation, dropout, batch_norm,
            channels, image_shape and `module_kwargs` that its signature names.
        module_kwargs: more keyword arguments for `module_factory`.
        device: 'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'.
        random_state: seeds weights, dropout, batch order and the validation split.
    """

    _task = ""

    def __init__(
        self,
        architecture: str = "mlp",
        hidden_layers: int = 2,
        width: int = 128,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        image_shape: Sequence[int] | None = None,
        channels: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        batch_size: int = 64,
        epochs: int = 50,
        lr_schedule: str = "none",
        early_stopping_patience: int | None = 10,
        validation_fraction: float = 0.1,
        hypergradient_beta: float | None = None,
        module_factory: str | None = None,
        module_kwargs: dict[str, Any] | None = None,
        device: str = "auto",
        random_state: int | None = None,
    ):
        self.architecture = architecture
        self.hidden_layers = hidden_layers
        self.width = width
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.image_shape = image_shape
        self.channels = channels
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.lr_schedule = lr_schedule
        self.early_stopping_patience = early_stopping_patience
        self.validation_fraction = validation_fraction
        self.hypergradient_beta = hypergradient_beta
        self.module_factory = module_factory
        self.module_kwargs = module_kwargs
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any, on_epoch: EpochHook | None = None) -> TorchEstimator:
        """Train on (X, y); after each epoch call `on_epoch(epoch, metrics)` (epoch from 1).

        `metrics` holds train_loss, lr and, with a validation split, val_loss and val_accuracy
        (classifier) or val_rmse (regressor). An exception raised by `on_epoch` (how a pruner stops
        a trial) propagates; the estimator is then left as before this call.
        """
        self._check_params()
        before = dict(self.__dict__)
        try:
            module, device, result = self._fit(X, y, on_epoch)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        self.module_, self.device_ = module, device
        self.history_, self.best_epoch_, self.stopped_epoch_ = result.history, result.best_epoch, result.stopped_epoch
        self.final_lr_ = result.history[-1]["lr"]
        return self

    def _fit(self, X: Any, y: Any, on_epoch: EpochHook | None):
        X, y = validate_data(self, X, y, dtype=np.float32, reset=True)
        targets = self._encode_targets(y)
        device = _training.resolve_device(self.device)
        seed = int(self.random_state if self.random_state is not None else np.random.randint(2**31 - 1))
        with _training.seeded(seed, device) as gen:
            module = self._build_module(X.shape[1], self._n_outputs(targets)).to(device)
            train_xy, val_xy = self._split(X, targets, seed, device)
            result = _training.train(module, self._loss(), train_xy, val_xy, self._schedule(), gen, self._val_metric, on_epoch)
        return module, device, result

    def _check_params(self) -> None:
        choices = {"architecture": _modules.ARCHITECTURES, "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.activation not in _modules.ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {', '.join(_modules.ACTIVATIONS)}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.early_stopping_patience is not None and self.validation_fraction == 0:
            raise ValueError("early_stopping_patience needs a validation split: set validation_fraction > 0 or patience None")
        if self.hypergradient_beta is not None and self.lr_schedule != "none":
            raise ValueError("hypergradient_beta adapts the learning rate itself; set lr_schedule 'none' with it")
        if self.epochs < 1 or self.batch_size < 1 or self.lr < 0 or not 0 <= self.dropout < 1:
            raise ValueError("epochs and batch_size must be >= 1, lr >= 0 and dropout in [0, 1)")

    def _schedule(self) -> _training.Schedule:
        return _training.Schedule(
            self.optimizer,
            self.lr,
            self.momentum,
            self.weight_decay,
            self.batch_size,
            self.epochs,
            self.lr_schedule,
            self.early_stopping_patience,
            self.hypergradient_beta,
        )

    def _build_module(self, n_in: int, n_out: int) -> nn.Module:
        offered = {
            "hidden_layers": self.hidden_layers,
            "width": self.width,
            "activation": self.activation,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "channels": self.channels,
            "image_shape": self.image_shape,
            **(self.module_kwargs or {}),
        }
        if self.module_factory:
            return _modules.from_factory(self.module_factory, n_in, n_out, offered)
        if self.architecture == "mlp":
            return _modules.mlp(n_in, n_out, self.hidden_layers, self.width, self.activation, self.dropout, self.batch_norm)
        if _modules.image_size(self.image_shape) != n_in:
            raise ValueError(
                f"image_shape {list(self.image_shape)} holds {_modules.image_size(self.image_shape)} "
                f"values but the input has {n_in} columns"
            )
        return _modules.cnn(
            self.image_shape, n_out, self.hidden_layers, self.channels, self.width, self.activation, self.dropout, self.batch_norm
        )

    def _split(self, X: np.ndarray, targets: np.ndarray, seed: int, device: torch.device):
        Xt, yt = torch.from_numpy(X).to(device), torch.from_numpy(targets).to(device)
        if self.validation_fraction == 0 or len(X) < 4:
            return (Xt, yt), None
        labels = targets if self._task == "classification" else None
        train, val = _training.split_indices(len(X), self.validation_fraction, seed, labels)
        train, val = torch.from_numpy(train).to(device), torch.from_numpy(val).to(device)
        return (Xt[train], yt[train]), (Xt[val], yt[val])

    def _outputs(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "module_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return _training.predict_batches(self.module_, torch.from_numpy(X).to(self.device_)).cpu()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class TorchClassifier(ClassifierMixin, TorchEstimator):
    """A PyTorch network trained with cross-entropy; `predict_proba` gives softmax probabilities."""

    _task = "classification"

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"the training target has a single class ({classes[0]!r}); a classifier needs two or more")
        self.classes_ = classes
        return encoded.astype(np.int64)

    def _n_outputs(self, targets: np.ndarray) -> int:
        return len(self.classes_)

    def _loss(self) -> nn.Module:
        return nn.CrossEntropyLoss()

    @staticmethod
    def _val_metric(out: torch.Tensor, y: torch.Tensor) -> tuple[str, float]:
        return "val_accuracy", float((out.argmax(1) == y).float().mean())

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of `classes_`."""
        return torch.softmax(self._outputs(X).double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label."""
        return self.classes_[self._outputs(X).argmax(1).numpy()]


class TorchRegressor(RegressorMixin, TorchEstimator):
    """A PyTorch network trained with mean squared error on the standardised target."""

    _task = "regression"

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std()) or 1.0
        return ((y - self.y_mean_) / self.y_scale_).astype(np.float32).reshape(-1, 1)

    def _n_outputs(self, targets: np.ndarray) -> int:
        return 1

    def _loss(self) -> nn.Module:
        return nn.MSELoss()

    def _val_metric(self, out: torch.Tensor, y: torch.Tensor) -> tuple[str, float]:
        return "val_rmse", float(torch.sqrt(torch.mean((out - y) ** 2))) * self.y_scale_

    def predict(self, X: Any) -> np.ndarray:
        """Predictions in the target's units."""
        return self._outputs(X).double().numpy().ravel() * self.y_scale_ + self.y_mean_
