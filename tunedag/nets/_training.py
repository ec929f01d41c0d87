"""The training loop behind the torch estimators: seeded batches, optimizer, schedule, early stopping.

Everything random (weight init, dropout, batch order, the validation split) draws from the seed
given to `seeded`, inside `torch.random.fork_rng`, so a fit leaves the global RNG as it found it
and the same seed gives the same history on CPU.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tunedag.nets._hypergrad import HypergradientOptimizer

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("none", "cosine", "step", "exponential")
EpochHook = Callable[[int, dict[str, float]], Any]


@dataclass
class Schedule:
    """The optimisation settings of one fit, as the estimator's parameters give them."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    epochs: int
    lr_schedule: str
    patience: int | None
    hypergradient_beta: float | None


@dataclass
class Result:
    """What a fit leaves: the per-epoch history and where early stopping ended."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_epoch: int = 0


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when torch sees a GPU, else CPU; 'cuda' without a GPU is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no CUDA GPU; use device 'auto' or 'cpu'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'") from None


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """Seed torch for one fit and restore the global RNG and determinism setting afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield torch.Generator().manual_seed(seed)
        finally:
            torch.use_deterministic_algorithms(was, warn_only=warn_only)


def make_optimizer(module: nn.Module, s: Schedule) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW; their hypergradient forms when `hypergradient_beta` is set."""
    params = module.parameters()
    if s.hypergradient_beta is not None:
        return HypergradientOptimizer(params, s.optimizer, s.lr, s.hypergradient_beta, s.momentum, s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    cls = torch.optim.Adam if s.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=s.lr, weight_decay=s.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, s: Schedule) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedules: cosine to 0 over `epochs`; step halves every epochs/4; exponential to 1% at the end."""
    if s.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs)
    if s.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, s.epochs // 4), gamma=0.5)
    if s.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.01 ** (1 / s.epochs))
    return None


def train(
    module: nn.Module,
    loss_fn: nn.Module,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    val_xy: tuple[torch.Tensor, torch.Tensor] | None,
    s: Schedule,
    gen: torch.Generator,
    val_metric: Callable[[torch.Tensor, torch.Tensor], tuple[str, float]],
    on_epoch: EpochHook | None,
) -> Result:
    """Train `module` in place for up to `s.epochs` epochs; restore the best weights when stopping early.

    Args:
        train_xy, val_xy: tensors on the module's device; val_xy None means no validation split.
        val_metric: (outputs, targets) -> (name, value) of the task's validation metric.
        on_epoch: called after each epoch with (epoch from 1, metrics); whatever it raises propagates.

    Returns:
        The history (train_loss, [val_loss, val_<metric>], lr per epoch), best and stopped epoch.
    """
    opt, result = make_optimizer(module, s), Result()
    scheduler = make_scheduler(opt, s)
    best_loss, best_state, bad = math.inf, None, 0
    for epoch in range(1, s.epochs + 1):
        metrics = {"train_loss": _epoch(module, loss_fn, opt, train_xy, s.batch_size, gen), "lr": opt.param_groups[0]["lr"]}
        if not math.isfinite(metrics["train_loss"]):
            raise ValueError(f"training diverged at epoch {epoch} (train loss {metrics['train_loss']}); lower lr")
        if val_xy is not None:
            out = predict_batches(module, val_xy[0])
            metrics["val_loss"] = float(loss_fn(out, val_xy[1]))
            name, value = val_metric(out, val_xy[1])
            metrics[name] = value
        result.history.append(metrics)
        result.stopped_epoch = epoch
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))
        if val_xy is not None and metrics["val_loss"] < best_loss:
            best_loss, best_state, bad, result.best_epoch = metrics["val_loss"], copy.deepcopy(module.state_dict()), 0, epoch
        else:
            bad += 1
        if s.patience is not None and val_xy is not None and bad >= s.patience:
            break
        if scheduler is not None:
            scheduler.step()
    if best_state is not None:
        module.load_state_dict(best_state)
    result.best_epoch = result.best_epoch or result.stopped_epoch
    return result


def _epoch(
    module: nn.Module,
    loss_fn: nn.Module,
    opt: torch.optim.Optimizer,
    xy: tuple[torch.Tensor, torch.Tensor],
    batch_size: int,
    gen: torch.Generator,
) -> float:
    """One pass over shuffled batches; a last batch of one row is dropped (batch norm needs two)."""
    X, y = xy
    module.train()
    order = torch.randperm(len(X), generator=gen).to(X.device)
    total, seen = 0.0, 0
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2 and seen:
            break
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(module(X[idx]), y[idx])
        loss.backward()
        opt.step()
        total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
    return total / max(seen, 1)


@torch.no_grad()
def predict_batches(module: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """The module's outputs in eval mode, in batches."""
    module.eval()
    return torch.cat([module(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]) if len(X) else module(X)


def split_indices(n: int, fraction: float, seed: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (stratified when every class has 2+ rows) split of n rows into train and validation indices."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    stratify = labels if labels is not None and np.bincount(labels).min(initial=2) >= 2 else None
    n_val = max(1, int(round(n * fraction)))
    if stratify is not None and n_val < len(np.unique(labels)):
        stratify = None
    train, val = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)
