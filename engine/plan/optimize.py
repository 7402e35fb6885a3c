"""Find the mixture with the lowest predicted objective under bounds, inside the trust region.

One search for every law (DESIGN.md 5):

1. Candidates: Dirichlet samples around the prior (RegMix's simulation, several
   concentrations), local samples around the observed runs the law likes best,
   the observed runs and the baselines -- all projected onto the bounds. Smooth
   laws get a quarter of the candidates: the gradient refinement does the rest.
2. Score: the law's prediction plus ``pessimism`` x the spread of the bootstrap
   refits (a lower-confidence-bound pick: where the refits disagree the law is
   guessing), only for candidates inside the trust region. A law whose replicas
   are constant shifts of one model (held-out residual offsets, not refits) has
   no such spread: its score is the prediction alone.
3. Tree laws: the mean of the top-k candidates (RegMix, Liu et al. 2024, Sec. 3.3);
   smooth laws: projected-gradient refinement from the top-k mean and the best
   few candidates, with the score's gradient by autograd (the budget-aware model
   differentiates the mixing law, its refits and the repetition law); each step
   tries several step lengths in one batch, and steps that leave the trust
   region are refused.
4. The result is never worse on the score than any baseline it was given (the
   best observed run is one).
5. Warm start (budget sweeps): the neighbour budget's plan is refined too and
   kept unless another contender beats it by ``keep_margin`` x the refits'
   spread there, so a sweep moves only where the law says it should.
6. The spread of the optimum: each bootstrap refit's own top-k mean; unknown
   (None) when the law has no real refits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from engine.plan.constraints import Bounds
from engine.plan.trust import TrustRegion
from engine.progress import ProgressCallback, report

log = logging.getLogger(__name__)

MeanFn = Callable[[np.ndarray], np.ndarray]  # (m, k) -> (m,)
ReplicaFn = Callable[[np.ndarray], np.ndarray]  # (m, k) -> (B, m)
GradFn = Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]  # (m, k), pessimism -> (m,), (m, k)


@dataclass(frozen=True)
class OptimizerSettings:
    """Knobs of the search (defaults chosen on held-out splits of the RegMix runs, bench/plan_regmix.py:
    pessimism 1 and the trust region beat both "off" variants on the mean objective; 30k samples judged
    no better than 8k within the split-to-split noise and cost 3x more with 1000-round per-target trees).

    n_samples: prior Dirichlet candidates scored by the law.
    n_local: candidates sampled around the best observed runs.
    shortlist: how many of the best-by-prediction candidates get replica scores.
    top_k: candidates averaged (RegMix uses 100).
    smooth_pool: share of n_samples, n_local, shortlist and top_k a smooth law gets (gradients do the rest).
    pessimism: weight of the bootstrap spread in the score (0 = the law's prediction alone).
    trust_quantile / trust_scale: radius rule of :meth:`TrustRegion.auto`; trust_scale=inf turns it off.
    n_starts / steps: smooth laws' gradient refinement (starts besides the top-k mean; iterations).
    n_replica_optima: bootstrap refits whose own top-k mean gives the spread of the optimum.
    keep_margin: a warm start is kept unless beaten by this many refit standard deviations.

    n_starts 8 (was 4): on RegMix's GP at 25B the refinement from 4 starts ended on the trust region's
    edge at scores from 3.8926 to 3.9321 across seeds 0-6 (mean 3.9087); from 8 starts 3.8926-3.8979
    (seeds 2-6), for ~0.3 s more a plan. The score is what the search minimises, so this is the search
    doing its job better; the held-out judge (bench/plan_regmix.py --compare-starts 4, 4 splits) sees no
    difference (GP 4.6887 vs 4.6884 on the mean, 5.1197 vs 5.1198 on Pile-CC; BENCHMARKS.md).
    """

    n_samples: int = 8000
    n_local: int = 2000
    shortlist: int = 1000
    top_k: int = 200
    smooth_pool: float = 0.25
    pessimism: float = 1.0
    trust_quantile: float = 0.5
    trust_scale: float = 1.0
    n_starts: int = 8
    steps: int = 30
    n_replica_optima: int = 8
    keep_margin: float = 0.05
    seed: int = 0

    def pool(self, smooth: bool) -> tuple[int, int, int, int]:
        """(n_samples, n_local, shortlist, top_k) for a smooth or a tree law."""
        share = self.smooth_pool if smooth else 1.0
        sizes = [max(1, int(round(v * share))) for v in (self.n_samples, self.n_local, self.shortlist, self.top_k)]
        return sizes[0], sizes[1], sizes[2], sizes[3]


@dataclass(frozen=True)
class Scorer:
    """What the search asks of a model at one budget.

    mean / replicas: the prediction and the bootstrap refits' predictions (numpy).
    score_and_grad: smooth laws only, the score (prediction + pessimism x refit spread) and its gradient.
    real_refits: False when the replicas are constant shifts of one model (their spread is no disagreement).
    """

    mean: MeanFn
    replicas: ReplicaFn
    score_and_grad: Optional[GradFn] = None
    real_refits: bool = True


@dataclass
class Optimum:
    mixture: np.ndarray  # (k,)
    score: float
    prediction: float
    spread: float  # bootstrap std of the prediction at the optimum
    replica_optima: np.ndarray | None  # (b, k); None when the law has no real refits
    chosen_from: str  # "top-k mean", "gradient refinement", "previous budget's plan" or a fixed candidate's name
    trust: TrustRegion
    pessimism: float  # the weight the score used (0 when the law has no real refits)


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
    scorer: Scorer,
    bounds: Bounds,
    *,
    prior: np.ndarray,
    observed: np.ndarray,
    fixed_candidates: dict[str, np.ndarray] | None = None,
    settings: OptimizerSettings = OptimizerSettings(),
    warm_start: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> Optimum:
    """The optimum of the score over ``bounds`` within the trust region (see the module docstring)."""
    rng = np.random.default_rng(settings.seed)
    smooth = scorer.score_and_grad is not None
    pessimism = settings.pessimism if scorer.real_refits else 0.0
    n_samples, n_local, shortlist, top_k = settings.pool(smooth)
    total = 3 + (settings.steps if smooth else 0)
    report(progress, "search", 0, total, "scoring candidates")
    fixed = {name: bounds.project(m)[0] for name, m in (fixed_candidates or {}).items()}
    trust = (TrustRegion.off(observed) if not np.isfinite(settings.trust_scale)
             else TrustRegion.auto(observed, settings.trust_quantile, settings.trust_scale))
    observed_in = bounds.project(observed) if len(observed) else np.zeros((0, len(prior)))

    parts = [sample_candidates(prior, bounds, n_samples, rng)]
    if len(observed_in):
        observed_pred = scorer.mean(observed_in)
        ranked = observed_in[np.argsort(observed_pred)[: max(1, min(32, len(observed_in)))]]
        parts.append(sample_local(ranked, bounds, n_local, rng))
    parts += [m[None, :] for m in fixed.values()]
    pool = np.vstack(parts)
    predictions = scorer.mean(pool)
    if len(observed_in):  # the observed runs were scored already
        pool, predictions = np.vstack([pool, observed_in]), np.concatenate([predictions, observed_pred])
    report(progress, "search", 1, total, "scoring the shortlist")
    # distances only for the best-predicted part of the pool: the rest cannot reach the shortlist anyway
    ranked_pool = np.argsort(predictions)[: 4 * shortlist]
    inside = trust.inside(pool[ranked_pool])
    if not inside.any():  # no good candidate inside: keep the ones closest to the runs
        d = trust.distance(pool[ranked_pool])
        inside = d <= np.quantile(d, 0.05)
    idx = ranked_pool[inside][:shortlist]
    short = pool[idx]
    replicas = scorer.replicas(short) if scorer.real_refits else np.zeros((0, len(short)))
    spread = replicas.std(axis=0) if replicas.shape[0] > 1 else np.zeros(len(short))
    scores = predictions[idx] + pessimism * spread

    def score_of(mixtures: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(score, prediction, replica spread) of each row, in one call of the law each."""
        reps = scorer.replicas(mixtures)
        s = reps.std(axis=0) if reps.shape[0] > 1 else np.zeros(len(mixtures))
        mean = scorer.mean(mixtures)
        return mean + pessimism * s, mean, s

    report(progress, "search", 2, total, "refining" if smooth else "averaging the best candidates")
    order = np.argsort(scores)
    top = short[order[:top_k]]
    primary, primary_from = [bounds.project(top.mean(axis=0))[0]], ["top-k mean"]
    warm = bounds.project(warm_start)[0] if warm_start is not None else None
    if smooth:
        starts = [primary[0][None, :], short[order[: settings.n_starts]]]
        if warm is not None:
            starts.append(warm[None, :])
        refined = _refine(lambda m: scorer.score_and_grad(m, pessimism), bounds, trust,
                          np.vstack(starts), settings.steps, progress, total)
        labels = ["gradient refinement"] * len(refined)
        if warm is not None:
            labels[-1] = "previous budget's plan, refined"
        primary, primary_from = [primary[0], *refined], ["top-k mean"] + labels
    # the baselines (the best observed run among them) are scored with the primary in one batch and the plan
    # never loses to them; other observed runs are not contenders: a tree law's prediction at its own training
    # runs is optimistic, and picking single runs over the top-k mean loses on held-out judges (bench/plan_regmix.py)
    extra = [warm] if warm is not None else []
    contenders = np.vstack(primary + list(fixed.values()) + extra)
    labels = primary_from + list(fixed) + (["previous budget's plan"] if warm is not None else [])
    final_scores, final_mean, final_spread = score_of(contenders)
    n_primary, n_fixed = len(primary), len(fixed)
    best = int(np.argmin(final_scores[:n_primary]))
    if n_fixed:
        challenger = n_primary + int(np.argmin(final_scores[n_primary:n_primary + n_fixed]))
        if final_scores[challenger] < final_scores[best] - 1e-12:
            best = challenger
    if warm is not None:
        kept = len(contenders) - 1
        noise = final_spread[kept] if final_spread[kept] > 0 else 1e-6 * max(1.0, abs(final_scores[kept]))
        if not final_scores[best] < final_scores[kept] - settings.keep_margin * noise:
            best = kept
    report(progress, "search", total, total, "done")
    replica_optima = (_replica_optima(replicas, short, top_k, settings.n_replica_optima)
                      if scorer.real_refits else None)
    log.info("optimum from %s: score %.5g over %d candidates (%d of the best %d inside the trust region)",
             labels[best], final_scores[best], len(pool), int(inside.sum()), len(ranked_pool))
    return Optimum(
        mixture=contenders[best],
        score=float(final_scores[best]),
        prediction=float(final_mean[best]),
        spread=float(final_spread[best]),
        replica_optima=replica_optima,
        chosen_from=labels[best],
        trust=trust,
        pessimism=pessimism,
    )


def _replica_optima(replicas: np.ndarray, short: np.ndarray, top_k: int, n: int) -> np.ndarray:
    """Each bootstrap refit's own top-k mean over the shortlisted candidates."""
    b = min(replicas.shape[0], n)
    k = min(top_k, len(short))
    optima = [short[np.argsort(replicas[r])[:k]].mean(axis=0) for r in range(b)]
    return np.array(optima) if optima else np.zeros((0, short.shape[1]))


CONVERGED = 1e-7  # relative gain of a step below which a start stops
STEP_FACTORS = np.array([4.0, 1.0, 0.25, 1.0 / 16])  # step lengths tried at once, relative to the last good one


def _refine(score_and_grad, bounds: Bounds, trust: TrustRegion, starts: np.ndarray, steps: int,
            progress: ProgressCallback | None, total: int) -> np.ndarray:
    """Projected gradient descent, all starts at once: each iteration scores four step lengths per start
    with their gradients in one batch, keeps the best that lowers the score inside the trust region and
    adapts the step to it. Steps that leave the trust region are pulled back onto its edge first."""
    def feasible(mixtures: np.ndarray) -> np.ndarray:
        return bounds.project(trust.retract(bounds.project(mixtures)))

    p = feasible(starts)
    m, k = p.shape
    current, grad = score_and_grad(p)
    step = np.full(m, 0.05)  # largest share any domain moves in one step
    active = np.ones(m, dtype=bool)
    n_try = len(STEP_FACTORS)
    for it in range(steps):
        rows = np.flatnonzero(active)
        if len(rows) == 0:
            break
        g = grad[rows] - grad[rows].mean(axis=1, keepdims=True)  # only moves along the simplex matter
        norm = np.abs(g).max(axis=1, keepdims=True)
        direction = np.where(norm > 0, g / np.maximum(norm, 1e-300), 0.0)
        lengths = step[rows, None] * STEP_FACTORS[None, :]
        proposals = feasible((p[rows, None, :] - lengths[..., None] * direction[:, None, :]).reshape(-1, k))
        values, grads = score_and_grad(proposals)
        values = values.reshape(len(rows), n_try)
        tol = 1e-10 * np.maximum(1.0, np.abs(current[rows]))
        ok = (values < current[rows, None] - tol[:, None]) & trust.inside(proposals).reshape(values.shape)
        values = np.where(ok, values, np.inf)
        pick = values.argmin(axis=1)
        moved = np.isfinite(values[np.arange(len(rows)), pick])
        gain = np.where(moved, current[rows] - values[np.arange(len(rows)), pick], 0.0)
        step[rows] = np.where(moved, lengths[np.arange(len(rows)), pick], step[rows] * STEP_FACTORS[-1] / 4)
        # converged: steps too short to matter, or a gain far below any difference a user could see
        active[rows[(~moved & (step[rows] < 1e-6)) | (moved & (gain < CONVERGED * np.abs(current[rows])))]] = False
        chosen = (np.arange(len(rows)) * n_try + pick)[moved]
        hit = rows[moved]
        p[hit], current[hit], grad[hit] = proposals[chosen], values[moved, pick[moved]], grads[chosen]
        report(progress, "search", 3 + it, total, "refining")
    return p
