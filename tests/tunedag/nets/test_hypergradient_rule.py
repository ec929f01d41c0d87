"""Hypergradient descent (Baydin et al. 2018) by its rule: lr <- lr + beta * grad_t . u_{t-1}, for sgd, adam and adamw.

The rate must rise while successive gradients agree and fall when they flip sign; a
gradient-blind schedule (a fixed decay a step) does neither. With beta 0 each form is exactly
torch's own optimizer, so the update direction is the real SGD / Adam / AdamW one.
"""

from __future__ import annotations

import pytest
import torch

from tunedag.nets import TorchClassifier
from tunedag.nets._hypergrad import HypergradientOptimizer

KINDS = ["sgd", "adam", "adamw"]
LR, BETA = 0.01, 0.001


def _step(opt: HypergradientOptimizer, p: torch.Tensor, grad: list[float]) -> float:
    """One step with a chosen gradient; the learning rate it used."""
    p.grad = torch.tensor(grad, dtype=torch.float64)
    opt.step()
    return opt.param_groups[0]["lr"]


@pytest.mark.parametrize("kind", KINDS)
def test_rate_rises_while_gradients_agree_and_falls_when_they_flip(kind: str) -> None:
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = HypergradientOptimizer([p], kind, lr=LR, beta=BETA, weight_decay=0.0)
    agree = [LR] + [_step(opt, p, [1.0, 2.0, -1.0]) for _ in range(4)]
    assert agree[1] == LR  # no earlier direction: the first step keeps the rate
    assert all(b > a for a, b in zip(agree[1:], agree[2:])), agree  # same sign: rises every step
    assert _step(opt, p, [-1.0, -2.0, 1.0]) < agree[-1]  # the sign flips: falls


@pytest.mark.parametrize("kind", KINDS)
def test_rate_moves_by_beta_times_the_dot_product_with_the_last_direction(kind: str) -> None:
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = HypergradientOptimizer([p], kind, lr=LR, beta=BETA)
    _step(opt, p, [3.0, -4.0])
    u = opt.state[p]["u"].clone()
    g = torch.tensor([-0.5, 2.0], dtype=torch.float64)
    before = p.detach().clone()
    lr = _step(opt, p, g.tolist())
    assert lr == pytest.approx(LR + BETA * float(g @ u), rel=1e-12)
    assert (p.detach() - before).tolist() == pytest.approx((-lr * opt.state[p]["u"]).tolist(), rel=1e-12)  # the new rate is used


@pytest.mark.parametrize(
    ("kind", "torch_cls", "kwargs"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0.01}),
        ("adam", torch.optim.Adam, {"weight_decay": 0.01}),
        ("adamw", torch.optim.AdamW, {"weight_decay": 0.01}),
    ],
)
def test_with_beta_zero_each_form_is_torchs_optimizer(kind: str, torch_cls, kwargs) -> None:
    torch.manual_seed(0)
    a, b = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    ours = torch.randn(5, dtype=torch.float64, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    opt_ours = HypergradientOptimizer([ours], kind, lr=0.05, beta=0.0, **kwargs)
    opt_theirs = torch_cls([theirs], lr=0.05, **kwargs)
    for _ in range(20):
        for p, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            ((a @ p - b) ** 2).sum().backward()
            opt.step()
    assert ours.detach().tolist() == pytest.approx(theirs.detach().tolist(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("kind", "big_lr", "big_beta"), [("sgd", 10.0, 1e-2), ("adam", 1.0, 1e-3), ("adamw", 1.0, 1e-3)])
def test_through_the_estimator_a_small_rate_climbs_and_an_oscillating_one_drops(digits, kind, big_lr, big_beta) -> None:
    """Full batches, one step an epoch (history holds the rate after each): from a small rate the gradients agree and
    the rate climbs every epoch; from a rate so large that the loss oscillates it drops at the first chance."""
    X, y = digits
    base = {"epochs": 4, "width": 16, "batch_size": len(X), "random_state": 0, "early_stopping_patience": None,
            "device": "cpu", "validation_fraction": 0.0, "optimizer": kind}  # fmt: skip
    small = [h["lr"] for h in TorchClassifier(**base, lr=1e-3, hypergradient_beta=1e-3).fit(X, y).history_]
    assert small[0] == 1e-3 and all(b > a for a, b in zip(small, small[1:])), small
    big = [h["lr"] for h in TorchClassifier(**base, lr=big_lr, hypergradient_beta=big_beta).fit(X, y).history_]
    assert big[0] == big_lr and big[1] < big_lr, big
