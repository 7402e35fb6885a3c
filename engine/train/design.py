"""Sweep designs: which mixtures and budgets the proxy runs cover.

As in RegMix (Liu et al. 2024, section 3.2), mixtures are drawn from a Dirichlet
centred on the token-proportional prior, with a concentration that varies from
sample to sample so the design holds both near-prior and sparse, extreme
mixtures. Our prior is the token distribution blended with the uniform one, so
a domain ten times smaller than the rest is still explored. Bounds are met by
rejection; every draw comes from one seeded generator, so a seed fixes the design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import InputError

@dataclass(frozen=True)
class Bounds:
    """Per-domain share bounds lo_j <= p_j <= hi_j."""

    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def none(cls, k: int) -> "Bounds":
        return cls(np.zeros(k), np.ones(k))

    def check(self) -> None:
        if (self.lo < 0).any() or (self.hi > 1).any() or (self.lo > self.hi).any():
            raise InputError("each bound needs 0 <= lo <= hi <= 1.")
        if self.lo.sum() > 1 + 1e-9 or self.hi.sum() < 1 - 1e-9:
            raise InputError(
                f"the bounds leave no mixture: lower bounds sum to {self.lo.sum():.3f}, "
                f"upper bounds to {self.hi.sum():.3f}.",
                hint="lower bounds must sum to at most 1 and upper bounds to at least 1.",
            )

    def contains(self, p: np.ndarray, tol: float = 1e-9) -> bool:
        return bool((p >= self.lo - tol).all() and (p <= self.hi + tol).all())


def sample_mixtures(
    unique_tokens: np.ndarray,
    n: int,
    seed: int,
    bounds: Bounds | None = None,
    concentration: tuple[float, float] = (0.3, 10.0),
    prior_weight: float = 0.5,
    max_tries: int = 100_000,
) -> np.ndarray:
    """``n`` mixtures (n, k) from Dirichlet(c * k * prior), c log-uniform in ``concentration``.

    prior = prior_weight * token proportions + (1 - prior_weight) * uniform.
    """
    tokens = np.asarray(unique_tokens, dtype=float)
    k = len(tokens)
    if k < 2 or (tokens <= 0).any():
        raise InputError("a sweep needs at least two domains, each with a positive token count.")
    bounds = bounds or Bounds.none(k)
    bounds.check()
    prior = prior_weight * tokens / tokens.sum() + (1 - prior_weight) / k
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for _ in range(max_tries):
        if len(out) == n:
            break
        scale = np.exp(rng.uniform(np.log(concentration[0]), np.log(concentration[1])))
        draw = rng.dirichlet(np.maximum(scale * k * prior, 1e-3))
        if bounds.contains(draw):
            out.append(draw)
    if len(out) < n:
        raise InputError(
            f"only {len(out)} of {n} sampled mixtures met the bounds after {max_tries} draws.",
            hint="widen the bounds.",
        )
    return np.vstack(out) if out else np.zeros((0, k))


@dataclass(frozen=True)
class SweepPoint:
    name: str
    mixture: dict[str, float]
    tokens: int
    seed: int


def sweep_design(domains: list[str], unique_tokens: list[int], n: int, budgets: list[int], seed: int,
                 bounds: Bounds | None = None, prefix: str = "sweep") -> list[SweepPoint]:
    """Every sampled mixture at every budget (crossed, so each budget sees the same mixtures)."""
    mixtures = sample_mixtures(np.asarray(unique_tokens), n, seed, bounds)
    return [
        SweepPoint(
            name=f"{prefix}-s{seed}-m{i:03d}-{_short(budget)}",
            mixture={d: round(float(share), 8) for d, share in zip(domains, row)},
            tokens=budget,
            seed=seed,
        )
        for budget in budgets
        for i, row in enumerate(mixtures)
    ]


def _short(tokens: int) -> str:
    for suffix, size in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if tokens >= size and tokens % (size // 1000 or 1) == 0:
            return f"{tokens / size:g}{suffix}"
    return str(tokens)
