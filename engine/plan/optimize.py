"""Find the mixture with the lowest predicted objective under bounds, inside the trust region.

One search for every law (DESIGN.md 5):

1. Candidates: Dirichlet samples around the prior (RegMix's simulation, several
   concentrations), local samples around the observed runs the law likes best,
   the observed runs and the baselines -- all projected onto the bounds.
2. Score: the law's prediction plus ``pessimism`` x the spread of the bootstrap
   refits (a lower-confidence-bound pick: where the refits disagree the law is
   guessing), only for candidates inside the trust region.
3. Tree laws: the mean of the top-k candidates (RegMix, Liu et al. 2024, Sec. 3.3);
   smooth laws: projected-gradient refinement from the top-k mean and the best
   few candidates (finite differences; steps that leave the trust region are refused).
4. The result is never worse on the score than any baseline it was given (the
   best observed run is one).
5. The spread of the optimum: the same top-k mean per bootstrap refit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine.plan.constraints import Bounds
from engine.plan.trust import TrustRegion

log = logging.getLogger(__name__)

MeanFn = Callable[[np.ndarray], np.ndarray]  # (m, k) -> (m,)
ReplicaFn = Callable[[np.ndarray], np.ndarray]  # (m, k) -> (B, m)


@dataclass(frozen=True)
class OptimizerSettings:
    """Knobs of the search (defaults chosen on held-out splits of the RegMix runs, bench/plan_regmix.py:
    pessimism 1 and the trust region beat both "off" variants on the mean objective; 30k samples judged
    no better than 8k within the split-to-split noise and cost 3x more with 1000-round per-target trees).

    n_samples: prior Dirichlet candidates scored by the law.
    n_local: candidates sampled around the best observed runs.
    shortlist: how many of the best-by-prediction candidates get replica scores.
    top_k: candidates averaged (RegMix uses 100).
    pessimism: weight of the bootstrap spread in the score (0 = the law's prediction alone).
    trust_quantile / trust_scale: radius rule of :meth:`TrustRegion.auto`; trust_scale=inf turns it off.
    n_starts / steps: smooth laws' gradient refinement.
    n_replica_optima: bootstrap refits re-optimised for the spread of the optimum.
    """

    n_samples: int = 8000
    n_local: int = 2000
    shortlist: int = 1000
    top_k: int = 200
    pessimism: float = 1.0
    trust_quantile: float = 0.5
    trust_scale: float = 1.0
    n_starts: int = 4
    steps: int = 40
    n_replica_optima: int = 8
    seed: int = 0


@dataclass
class Optimum:
    mixture: np.ndarray  # (k,)
    score: float
    prediction: float
    spread: float  # bootstrap std of the prediction at the optimum
    replica_optima: np.ndarray  # (b, k)
    chosen_from: str  # "top-k mean", "gradient refinement" or the name of a fixed candidate
    trust: TrustRegion


def sample_candidates(prior: np.ndarray, bounds: Bounds, n: int, rng: np.random.Generator) -> np.ndarray:
    """Dirichlet samples around ``prior`` at concentrations from diffuse to tight, projected on ``bounds``."""
    k = len(prior)
    base = np.maximum(prior, 1e-3)
    base = base / base.sum()
    concentration = np.exp(rng.uniform(np.log(0.5), np.log(20.0 * k), size=n))
    alpha = np.maximum(concentration[:, None] * base[None, :], 1e-3)
    samples = rng.gamma(alpha)
    samples /= np.maximum(samples.sum(axis=1, keepdims=True), 1e-300)
    bad = ~np.isfinite(samples).all(axis=1)
    samples[bad] = base
    return bounds.project(samples)


def sample_local(centres: np.ndarray, bounds: Bounds, n: int, rng: np.random.Generator,
                 concentration: tuple[float, float] = (30.0, 400.0)) -> np.ndarray:
    """Dirichlet samples centred on each row of ``centres`` (tight), projected on ``bounds``."""
    if len(centres) == 0 or n <= 0:
        return np.zeros((0, bounds.lo.size))
    pick = centres[rng.integers(0, len(centres), size=n)]
    conc = np.exp(rng.uniform(np.log(concentration[0]), np.log(concentration[1]), size=n))
    samples = rng.gamma(np.maximum(conc[:, None] * pick, 1e-2))
    samples /= np.maximum(samples.sum(axis=1, keepdims=True), 1e-300)
    return bounds.project(samples)


def optimize(
    mean_fn: MeanFn,
    replica_fn: ReplicaFn,
    bounds: Bounds,
    *,
    smooth: bool,
    prior: np.ndarray,
    observed: np.ndarray,
    fixed_candidates: dict[str, np.ndarray] | None = None,
    settings: OptimizerSettings = OptimizerSettings(),
) -> Optimum:
    """The optimum of ``mean_fn`` (+ pessimism x replica spread) over ``bounds`` within the trust region."""
    rng = np.random.default_rng(settings.seed)
    fixed = {name: bounds.project(m)[0] for name, m in (fixed_candidates or {}).items()}
    trust = (TrustRegion.off(observed) if not np.isfinite(settings.trust_scale)
             else TrustRegion.auto(observed, settings.trust_quantile, settings.trust_scale))
    observed_in = bounds.project(observed) if len(observed) else np.zeros((0, len(prior)))

    pool = sample_candidates(prior, bounds, settings.n_samples, rng)
    if len(observed_in):
        ranked = observed_in[np.argsort(mean_fn(observed_in))[: max(1, min(32, len(observed_in)))]]
        pool = np.vstack([pool, sample_local(ranked, bounds, settings.n_local, rng), observed_in])
    pool = np.vstack([pool] + [m[None, :] for m in fixed.values()])
    predictions = mean_fn(pool)
    # distances only for the best-predicted part of the pool: the rest cannot reach the shortlist anyway
    ranked_pool = np.argsort(predictions)[: 4 * settings.shortlist]
    inside = trust.inside(pool[ranked_pool])
    if not inside.any():  # no good candidate inside: keep the ones closest to the runs
        d = trust.distance(pool[ranked_pool])
        inside = d <= np.quantile(d, 0.05)
    idx = ranked_pool[inside][: settings.shortlist]
    short = pool[idx]
    replicas = replica_fn(short)
    spread = replicas.std(axis=0) if replicas.shape[0] > 1 else np.zeros(len(short))
    scores = predictions[idx] + settings.pessimism * spread

    def score_of(mixtures: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(score, prediction, replica spread) of each row, in one call of the law each."""
        reps = replica_fn(mixtures)
        s = reps.std(axis=0) if reps.shape[0] > 1 else np.zeros(len(mixtures))
        mean = mean_fn(mixtures)
        return mean + settings.pessimism * s, mean, s

    order = np.argsort(scores)
    top = short[order[: settings.top_k]]
    primary, primary_from = [bounds.project(top.mean(axis=0))[0]], ["top-k mean"]
    if smooth:
        starts = np.vstack([primary[0][None, :], short[order[: settings.n_starts]]])
        refined = _refine(lambda m: score_of(m)[0], bounds, trust, starts, settings.steps)
        primary, primary_from = [primary[0], *refined], ["top-k mean"] + ["gradient refinement"] * len(refined)
    # the baselines (the best observed run among them) are scored with the primary in one batch and the plan
    # never loses to them; other observed runs are not contenders: a tree law's prediction at its own training
    # runs is optimistic, and picking single runs over the top-k mean loses on held-out judges (bench/plan_regmix.py)
    contenders = np.vstack(primary + list(fixed.values()))
    labels = primary_from + list(fixed)
    final_scores, final_mean, final_spread = score_of(contenders)
    n_primary = len(primary)
    best = int(np.argmin(final_scores[:n_primary]))
    challenger = n_primary + int(np.argmin(final_scores[n_primary:])) if len(contenders) > n_primary else best
    if final_scores[challenger] < final_scores[best] - 1e-12:
        best = challenger
    best_mixture, best_from, best_score = contenders[best], labels[best], float(final_scores[best])
    replica_optima = _replica_optima(replicas, short, settings)
    log.info("optimum from %s: score %.5g over %d candidates (%d of the best %d inside the trust region)",
             best_from, best_score, len(pool), int(inside.sum()), len(ranked_pool))
    return Optimum(
        mixture=best_mixture,
        score=best_score,
        prediction=float(final_mean[best]),
        spread=float(final_spread[best]),
        replica_optima=replica_optima,
        chosen_from=best_from,
        trust=trust,
    )


def _replica_optima(replicas: np.ndarray, short: np.ndarray, settings: OptimizerSettings) -> np.ndarray:
    """Each bootstrap refit's own top-k mean over the shortlisted candidates."""
    b = min(replicas.shape[0], settings.n_replica_optima)
    k = min(settings.top_k, len(short))
    optima = [short[np.argsort(replicas[r])[:k]].mean(axis=0) for r in range(b)]
    return np.array(optima) if optima else np.zeros((0, short.shape[1]))


def _refine(score_of, bounds: Bounds, trust: TrustRegion, starts: np.ndarray, steps: int) -> np.ndarray:
    """Projected gradient descent with backtracking, finite-difference gradients, all starts at once."""
    p = bounds.project(starts)
    m, k = p.shape
    current = score_of(p)
    step = np.full(m, 0.05)
    h = 1e-4
    eye = np.eye(k)
    for _ in range(steps):
        probes = (p[:, None, :] + h * eye[None, :, :]).reshape(-1, k)
        grad = (score_of(probes).reshape(m, k) - current[:, None]) / h
        grad -= grad.mean(axis=1, keepdims=True)  # only moves along the simplex matter
        norm = np.abs(grad).max(axis=1, keepdims=True)
        direction = np.where(norm > 0, grad / np.maximum(norm, 1e-300), 0.0)
        proposal = bounds.project(p - step[:, None] * direction)
        new = score_of(proposal)
        ok = (new < current) & trust.inside(proposal)
        p = np.where(ok[:, None], proposal, p)
        current = np.where(ok, new, current)
        step = np.where(ok, np.minimum(step * 1.5, 0.2), step * 0.5)
        if (step < 1e-5).all():
            break
    return p
