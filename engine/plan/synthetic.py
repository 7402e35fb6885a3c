"""Synthetic ground-truth laws, to test that the planner finds what is really there.

``y_t(p) = E_t + sum_j A_tj * (p_j + eps) ** (-b)``: every domain has
diminishing returns (an interior optimum), and a domain with a large ``A`` is
"high utility". Wrapped in a :class:`BudgetAwareModel` with small unique-token
counts it shows the compute-aware curation effect of Goyal et al. 2024: the
best domain's share falls once its data is read for too many epochs.

Because the law is linear in its features for fixed ``eps, b``, it can also be
*fitted* exactly by least squares, with bootstrap refits for intervals -- a
real fitted law with known truth, used by the tests of intervals and of
:mod:`engine.plan.suggest`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class PowerMixtureModel:
    """An :class:`engine.laws.base.ObjectiveModel` with known (or least-squares) parameters."""

    domains: list[str]
    targets: list[str]
    weights: np.ndarray  # (t,)
    offset: np.ndarray  # (t,) E_t
    scale: np.ndarray  # (t, k) A_tj
    eps: float = 0.02
    power: float = 0.25
    replica_offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (B, t)
    replica_scales: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # (B, t, k)
    law: str = "synthetic-power"
    smooth: bool = True

    def features(self, mixtures: np.ndarray) -> np.ndarray:
        return (np.clip(np.atleast_2d(mixtures), 0.0, None) + self.eps) ** (-self.power)

    def predict_targets(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        return self.offset[None, :] + self.features(mixtures) @ self.scale.T

    def predict(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        return self.predict_targets(mixtures) @ self.weights

    def predict_targets_replicas(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        if len(self.replica_offsets) == 0:
            return self.predict_targets(mixtures)[None]
        f = self.features(mixtures)
        return self.replica_offsets[:, None, :] + np.einsum("mk,btk->bmt", f, self.replica_scales)

    # torch paths (smooth law): the planner differentiates the objective through these

    def predict_targets_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        f = (mixtures.clamp_min(0.0) + self.eps) ** (-self.power)
        return torch.as_tensor(self.offset)[None, :] + f @ torch.as_tensor(self.scale).T

    def predict_targets_and_replicas_torch(self, mixtures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.predict_targets_torch(mixtures)
        if len(self.replica_offsets) == 0:
            return mean, mean[None]
        f = (mixtures.clamp_min(0.0) + self.eps) ** (-self.power)
        return mean, (torch.as_tensor(self.replica_offsets)[:, None, :]
                      + torch.einsum("mk,btk->bmt", f, torch.as_tensor(self.replica_scales)))


def truth(scale: np.ndarray, domains: list[str], offset: float = 2.0, **kw) -> PowerMixtureModel:
    """One-target ground truth with per-domain utilities ``scale`` (k,)."""
    return PowerMixtureModel(domains, ["loss"], np.ones(1), np.array([offset]), np.atleast_2d(scale), **kw)


def fit_power_model(
    mixtures: np.ndarray,
    y: np.ndarray,
    domains: list[str],
    *,
    eps: float = 0.02,
    power: float = 0.25,
    n_boot: int = 16,
    seed: int = 0,
    ridge: float = 1e-6,
) -> PowerMixtureModel:
    """Least-squares fit of offset and scales (one target), plus ``n_boot`` bootstrap refits over runs."""
    rng = np.random.default_rng(seed)
    features = (np.clip(mixtures, 0, None) + eps) ** (-power)
    design = np.column_stack([np.ones(len(y)), features])

    def solve(rows: np.ndarray) -> np.ndarray:
        a = design[rows]
        return np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y[rows])

    point = solve(np.arange(len(y)))
    boots = np.array([solve(rng.integers(0, len(y), len(y))) for _ in range(n_boot)])
    return PowerMixtureModel(
        domains, ["loss"], np.ones(1), point[:1], point[None, 1:], eps, power,
        replica_offsets=boots[:, :1], replica_scales=boots[:, None, 1:])


@dataclass(frozen=True)
class SyntheticSwarm:
    """A swarm of proxy runs drawn from a known :class:`PowerMixtureModel` (the shape of a real swarm).

    mixtures: (n, k) shares; values: (n, t) measured targets (truth + noise); truth: the law they came from.
    """

    mixtures: np.ndarray
    values: np.ndarray
    domains: list[str]
    targets: list[str]
    truth: PowerMixtureModel


def synthetic_swarm(runs: int, domains: int, targets: int, *, seed: int = 0, noise: float = 0.01) -> SyntheticSwarm:
    """RegMix-style swarm: each run mixes a random subset of the domains (Dirichlet shares), and each
    target is a loss that falls with every domain's share, most with a few related domains.

    Target t's utilities ``A_tj`` are a common part (every domain helps a little) plus a large part
    on 1-3 domains, so targets are correlated but differ -- as validation losses on one corpus do.
    ``noise`` is the standard deviation of the measurement noise, in the units of the loss.
    """
    rng = np.random.default_rng(seed)
    names = [f"d{j:02d}" for j in range(domains)]
    target_names = [f"t{i:03d}" for i in range(targets)]
    shares = np.zeros((runs, domains))
    for r in range(runs):
        used = rng.choice(domains, size=int(rng.integers(1, max(2, domains // 2) + 1)), replace=False)
        shares[r, used] = rng.dirichlet(np.full(len(used), 0.7))
    common = rng.uniform(0.02, 0.08, domains)
    scale = np.tile(common, (targets, 1)) * rng.uniform(0.5, 1.5, (targets, domains))
    for i in range(targets):
        related = rng.choice(domains, size=int(rng.integers(1, 4)), replace=False)
        scale[i, related] += rng.uniform(0.2, 0.6, len(related))
    truth = PowerMixtureModel(names, target_names, np.full(targets, 1.0 / targets),
                              rng.uniform(1.5, 3.0, targets), scale)
    values = truth.predict_targets(shares) + rng.normal(0.0, noise, (runs, targets))
    return SyntheticSwarm(shares, values, names, target_names, truth)
