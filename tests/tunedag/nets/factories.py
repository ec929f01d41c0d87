"""A user's own module factory, named by import path in the tests: tests.tunedag.nets.factories:tiny."""

from torch import nn


def tiny(n_features: int, n_outputs: int, width: int = 8, scale: float = 1.0) -> nn.Module:
    """A one-hidden-layer network; takes `width` from the estimator and `scale` from module_kwargs."""
    assert scale > 0
    return nn.Sequential(nn.Linear(n_features, width), nn.Tanh(), nn.Linear(width, n_outputs))


def not_a_module(n_features: int, n_outputs: int) -> str:
    return "nope"
