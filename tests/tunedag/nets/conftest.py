"""Small data for the torch estimator tests: a slice of the digits and a regression set."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_regression


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """300 digits, pixels scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16).astype(np.float64), y[:300]


@pytest.fixture(scope="session")
def regression() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(n_samples=200, n_features=6, noise=5.0, random_state=0)
    return X, y * 10 + 500  # a target far from 0, so unscaling is checked


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread, as the trial executor gives each trial on a small machine: these nets are
    tiny, and with 2 threads on 2 busy cores each op waits on the other thread (30x slower measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
