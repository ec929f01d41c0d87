"""Online learning-rate adaptation by hypergradient descent (Baydin et al., ICLR 2018).

"Online learning rate adaptation with hypergradient descent" treats the learning rate as a
parameter: since theta_t = theta_{t-1} - lr * u_{t-1} (u: the previous update direction),
d f(theta_t) / d lr = -grad_t . u_{t-1}, so before each step

    lr <- lr + beta * grad_t . u_{t-1}

and then the ordinary update runs with the new lr. With u = the plain gradient this is SGD-HD,
with u = the momentum buffer SGDN-HD, with u = m_hat / (sqrt(v_hat) + eps) Adam-HD. AdamW-HD
applies the decoupled weight decay outside the direction. The rate is kept at or above 0
(an ascent step never helps), a guard the paper does not need with its small betas.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class HypergradientOptimizer(torch.optim.Optimizer):
    """SGD (with momentum), Adam or AdamW whose single learning rate adapts online (one param group)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        kind: str,
        lr: float,
        beta: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        if kind not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer {kind!r} has no hypergradient form; choose sgd, adam or adamw")
        if beta < 0 or lr < 0:
            raise ValueError(f"hypergradient_beta ({beta}) and lr ({lr}) must be >= 0")
        defaults = dict(lr=lr, beta=beta, momentum=momentum, weight_decay=weight_decay, betas=betas, eps=eps)
        super().__init__(params, defaults)
        self.kind = kind
        self._step = 0

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D401 - torch's signature
        """Adapt the learning rate from the hypergradient, then take one step with it."""
        loss = None if closure is None else closure()
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        grads = [self._grad(p, group) for p in params]
        self._step += 1
        hyper = sum(
            (torch.sum(g * self.state[p]["u"]) for p, g in zip(params, grads) if "u" in self.state[p]),
            torch.zeros((), device=params[0].device if params else None),
        )
        group["lr"] = max(0.0, group["lr"] + group["beta"] * float(hyper))
        for p, g in zip(params, grads):
            u = self._direction(p, g, group)
            if self.kind == "adamw" and group["weight_decay"]:
                p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_(u, alpha=-group["lr"])
            self.state[p]["u"] = u
        return loss

    def _grad(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        g = p.grad
        if self.kind != "adamw" and group["weight_decay"]:
            g = g.add(p, alpha=group["weight_decay"])  # L2 in the gradient, as torch's SGD and Adam do
        return g

    def _direction(self, p: torch.Tensor, g: torch.Tensor, group: dict) -> torch.Tensor:
        state = self.state[p]
        if self.kind == "sgd":
            if not group["momentum"]:
                return g.clone()
            buf = state.get("momentum")
            buf = g.clone() if buf is None else buf.mul_(group["momentum"]).add_(g)
            state["momentum"] = buf
            return buf.clone()
        b1, b2 = group["betas"]
        m = state.setdefault("m", torch.zeros_like(p)).mul_(b1).add_(g, alpha=1 - b1)
        v = state.setdefault("v", torch.zeros_like(p)).mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat, v_hat = m / (1 - b1**self._step), v / (1 - b2**self._step)
        return m_hat / (v_hat.sqrt() + group["eps"])
