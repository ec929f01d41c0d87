"""A small GAN on scikit-learn's 8x8 digits, tuned by tunedag through `model.train_fn` (examples/gan_digits.yaml).

The score is a Frechet distance (as in FID, Heusel et al. 2017) in the feature space of a fixed
classifier: a logistic regression trained on the real training digits maps every image to its 10
class scores; the distance compares the mean and covariance of those scores for 500 generated
digits with those of the real held-out digits (the validation split while tuning, the test split
in the final stage). Lower is better; a generator that copies the data's distribution scores
near 0. `confidence` (mean top class probability of generated digits) and `coverage` (entropy of
their predicted classes over log 10: 1 when every digit is drawn equally) are reported beside it.

CPU-friendly: two small MLPs, a few seconds a trial on 2 cores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import linalg
from sklearn.linear_model import LogisticRegression
from torch import nn

N_SAMPLES = 500  # generated digits scored at each epoch


def train(params: dict[str, Any], data: Any, reporter: Any) -> tuple[dict[str, float], nn.Module]:
    """tunedag's train_fn contract (tunedag.custom): train the GAN, report the distance each epoch, return metrics."""
    X_train = data.X_train.to_numpy(np.float32)
    low, high = float(X_train.min()), float(X_train.max())
    critic = _feature_space(X_train, data.y_train.to_numpy(), data.seed)
    real_features = critic.decision_function(data.X_val.to_numpy(np.float64))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(data.seed)
        gen = torch.Generator().manual_seed(data.seed)
        G, D = _generator(params, X_train.shape[1]), _discriminator(params, X_train.shape[1])
        opt_g = torch.optim.Adam(G.parameters(), lr=params["g_lr"], betas=(params["beta1"], 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=params["d_lr"], betas=(params["beta1"], 0.999))
        x = torch.from_numpy((X_train - low) / (high - low) * 2 - 1)
        for epoch in range(1, int(params["epochs"]) + 1):
            d_loss, g_loss = _epoch(G, D, opt_g, opt_d, x, int(params["batch_size"]), int(params["latent_dim"]), gen)
            metrics = _score(G, critic, real_features, int(params["latent_dim"]), low, high, gen)
            reporter.log(epoch, {"d_loss": d_loss, "g_loss": g_loss, **metrics})
            reporter.report(epoch, metrics["frechet_distance"])
    return metrics, G.eval()


def _generator(p: dict[str, Any], n_out: int) -> nn.Module:
    h = int(p["hidden"])
    return nn.Sequential(
        nn.Linear(int(p["latent_dim"]), h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2), nn.Linear(h, n_out), nn.Tanh()
    )


def _discriminator(p: dict[str, Any], n_in: int) -> nn.Module:
    h = int(p["hidden"])
    return nn.Sequential(nn.Linear(n_in, h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2), nn.Linear(h, 1))


def _epoch(G, D, opt_g, opt_d, x: torch.Tensor, batch_size: int, latent: int, gen: torch.Generator) -> tuple[float, float]:
    """One pass of the non-saturating GAN losses over shuffled batches; the mean losses."""
    bce, d_total, g_total, n = nn.BCEWithLogitsLoss(), 0.0, 0.0, 0
    for idx in torch.randperm(len(x), generator=gen).split(batch_size):
        real, z = x[idx], torch.randn(len(idx), latent, generator=gen)
        fake = G(z)
        d_loss = bce(D(real), torch.ones(len(idx), 1)) + bce(D(fake.detach()), torch.zeros(len(idx), 1))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), torch.ones(len(idx), 1))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_total, g_total, n = d_total + float(d_loss.detach()), g_total + float(g_loss.detach()), n + 1
    return d_total / n, g_total / n


def _feature_space(X: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    """The fixed classifier whose class scores are the feature space of the distance."""
    return LogisticRegression(max_iter=2000, random_state=seed).fit(X.astype(np.float64), y)


@torch.no_grad()
def _score(
    G: nn.Module, critic: LogisticRegression, real: np.ndarray, latent: int, low: float, high: float, gen: torch.Generator
) -> dict[str, float]:
    G.eval()
    fake = (G(torch.randn(N_SAMPLES, latent, generator=gen)).double().numpy() + 1) / 2 * (high - low) + low
    G.train()
    proba = critic.predict_proba(fake)
    counts = np.bincount(proba.argmax(1), minlength=proba.shape[1]) / len(proba)
    entropy = -np.sum(counts[counts > 0] * np.log(counts[counts > 0]))
    return {
        "frechet_distance": frechet_distance(critic.decision_function(fake), real),
        "confidence": float(proba.max(1).mean()),
        "coverage": float(entropy / np.log(proba.shape[1])),
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two sets of feature rows."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))
