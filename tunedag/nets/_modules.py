"""The built-in network families (an MLP and a small CNN) and the user's own module factory."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from tunedag.imports import import_named, takes_positional

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}
ARCHITECTURES = ("mlp", "cnn")


def activation(name: str) -> nn.Module:
    """A fresh activation layer by name; ValueError names the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(n_in: int, n_out: int, hidden_layers: int, width: int, act: str, dropout: float, batch_norm: bool) -> nn.Sequential:
    """`hidden_layers` blocks of Linear(width) [+ BatchNorm] + activation [+ Dropout], then a linear head.

    Args:
        n_in: input columns; n_out: outputs (classes, or 1 for regression).
        hidden_layers: 0 gives a linear model.

    Returns:
        The network, mapping (N, n_in) to (N, n_out).
    """
    layers: list[nn.Module] = []
    for i in range(hidden_layers):
        layers.append(nn.Linear(n_in if i == 0 else width, width))
        layers += [nn.BatchNorm1d(width)] if batch_norm else []
        layers.append(activation(act))
        layers += [nn.Dropout(dropout)] if dropout > 0 else []
    layers.append(nn.Linear(width if hidden_layers else n_in, n_out))
    return nn.Sequential(*layers)


def cnn(
    image_shape: Sequence[int],
    n_out: int,
    hidden_layers: int,
    channels: int,
    width: int,
    act: str,
    dropout: float,
    batch_norm: bool,
) -> nn.Sequential:
    """`hidden_layers` conv blocks (3x3 conv [+ BatchNorm] + activation, 2x2 max-pool while the image is
    at least 2x2; channels double each block), then Linear(width) + activation [+ Dropout] and a linear head.

    Args:
        image_shape: (C, H, W) of one image; the input is its flattened C*H*W columns.

    Returns:
        The network, mapping (N, C*H*W) to (N, n_out).
    """
    c, h, w = _image_shape(image_shape)
    layers: list[nn.Module] = [nn.Unflatten(1, (c, h, w))]
    for i in range(hidden_layers):
        out = channels * 2**i
        layers.append(nn.Conv2d(c, out, kernel_size=3, padding=1))
        layers += [nn.BatchNorm2d(out)] if batch_norm else []
        layers.append(activation(act))
        if h >= 2 and w >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = out
    layers += [nn.Flatten(), nn.Linear(c * h * w, width), activation(act)]
    layers += [nn.Dropout(dropout)] if dropout > 0 else []
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _image_shape(shape: Sequence[int] | None) -> tuple[int, int, int]:
    if shape is None or len(shape) not in (2, 3) or any(int(s) < 1 for s in shape):
        raise ValueError(f"image_shape must be [channels, height, width] or [height, width] for the cnn, got {shape!r}")
    dims = [int(s) for s in shape]
    return (1, *dims) if len(dims) == 2 else (dims[0], dims[1], dims[2])


def image_size(shape: Sequence[int] | None) -> int:
    """How many input columns one image of `shape` takes."""
    return math.prod(_image_shape(shape))


def resolve_factory(path: str) -> Callable[..., nn.Module]:
    """Import a module factory named "package.module:function" (or "package.module.function")."""
    _, obj = import_named(
        path, "module_factory", "'mypkg.nets:build'", error=ValueError, enforce=False
    )  # allow-list: at validation
    if not inspect.isfunction(obj) or not takes_positional(obj, 2):
        raise ValueError(f"module_factory {path!r} must name a function like 'mypkg.nets:build' returning an nn.Module")
    return obj


def from_factory(path: str, n_in: int, n_out: int, offered: dict[str, Any]) -> nn.Module:
    """Call the user's factory with (n_in, n_out) and those of `offered` its signature names (or all, with **kwargs)."""
    factory = resolve_factory(path)
    sig = inspect.signature(factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
    kwargs = {k: v for k, v in offered.items() if takes_all or k in sig}
    module = factory(n_in, n_out, **kwargs)
    if not isinstance(module, nn.Module):
        raise ValueError(f"module_factory {path!r} returned {type(module).__name__}, not a torch.nn.Module")
    return module


def n_parameters(module: nn.Module) -> int:
    """How many trainable numbers the network has."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_bytes(module: nn.Module) -> int:
    """The size of the network's parameters and buffers in bytes."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
