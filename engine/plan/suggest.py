"""Next proxy runs to pay for: where new results would most narrow the plan's interval.

The plan's uncertainty is the disagreement of the bootstrap refits of the
mixing law at the *effective* mixture the plan feeds it (at the proxy scale,
a plan that repeats data is predicted from ``p'``, see
:mod:`engine.plan.budget_law`). New runs teach the law most where the refits
disagree and close to that point, so candidates are sampled around the plan's
effective mixture and the bootstrap optima, scored by

    acquisition(q) = std over refits of f(q) * exp(-TV(q, p'_plan) / width)

and picked greedily for diversity: each next run maximises the acquisition
times ``min(1, distance to the runs already picked / min_gap)`` (greedy
max-min, so eight suggestions are not eight copies of one mixture).

A law whose replicas are constant shifts of one model (held-out residual
offsets, not refits) has no disagreement to follow. Then the suggestion says
so, and picks untried mixtures near the plan instead: the acquisition is
``TV(q, nearest run) * exp(-TV(q, p'_plan) / width)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.plan.budget_law import BudgetAwareModel, objective_replicas
from engine.plan.constraints import Bounds
from engine.plan.exports import write_csv
from engine.plan.optimize import sample_local
from engine.plan.plan import Plan
from engine.plan.trust import tv_distance_to_runs
from engine.progress import ProgressCallback, report

DISAGREEMENT = "Proxy mixtures near the plan where the bootstrap refits disagree most, kept apart from each other."


@dataclass(frozen=True)
class Suggestion:
    """Mixtures to run at the proxy scale, and why each was picked."""

    domains: list[str]
    mixtures: np.ndarray  # (n, k)
    spread: np.ndarray  # (n,) bootstrap std of the objective there; NaN when the law has no refits
    distance_to_plan: np.ndarray  # (n,) TV distance from the plan's effective mixture
    basis: str = DISAGREEMENT  # what picked them, in one line a user reads

    def to_csv(self, prefix: str = "suggest") -> str:
        rows = [[f"{prefix}-{i + 1:03d}", *(f"{v:.6f}" for v in row)] for i, row in enumerate(self.mixtures)]
        return write_csv(["run_id", *self.domains], rows)

    def to_dict(self) -> dict:
        return {"domains": self.domains, "mixtures": self.mixtures.round(6).tolist(),
                "spread": [None if not np.isfinite(v) else float(v) for v in self.spread],
                "distance_to_plan": self.distance_to_plan.tolist(), "basis": self.basis}


def suggest_runs(
    model: BudgetAwareModel,
    plan: Plan,
    n: int,
    *,
    observed: np.ndarray | None = None,
    n_candidates: int = 6000,
    width: float = 0.05,
    min_gap: float = 0.03,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> Suggestion:
    """``n`` proxy mixtures whose results would most narrow ``plan``'s interval.

    observed: the runs (model's domain order); used when the law has no refits to disagree.
    """
    rng = np.random.default_rng(seed)
    k = len(model.domains)
    report(progress, "suggest", 0, 2, "scoring candidates")
    simplex = Bounds(model.domains, np.zeros(k), np.ones(k), [""] * k, [""] * k)
    centre = model.effective(plan.mixture_array()[None, :], plan.budget_tokens)[0][0]
    centres = centre[None, :]
    candidates = np.vstack([
        sample_local(centres, simplex, n_candidates // 2, rng, concentration=(20.0, 300.0)),
        sample_local(centres, simplex, n_candidates // 2, rng, concentration=(5.0, 40.0)),
    ])
    distance = 0.5 * np.abs(candidates - centre[None, :]).sum(axis=1)
    if model.real_refits:
        replicas = objective_replicas(model.base, candidates)
        spread = replicas.std(axis=0) if replicas.shape[0] > 1 else np.zeros(len(candidates))
        acquisition = spread * np.exp(-distance / width)
        basis = DISAGREEMENT
    else:
        spread = np.full(len(candidates), np.nan)
        novelty = (tv_distance_to_runs(candidates, observed)[0] if observed is not None and len(observed)
                   else np.ones(len(candidates)))
        acquisition = novelty * np.exp(-distance / width)
        basis = (f"Law '{model.law}' has no bootstrap refits, so there is no disagreement to follow: these are "
                 "untried mixtures near the plan (far from the runs), kept apart from each other.")
    report(progress, "suggest", 1, 2, "picking diverse runs")
    picked: list[int] = []
    gap = np.full(len(candidates), np.inf)
    for _ in range(min(n, len(candidates))):
        value = acquisition * np.minimum(1.0, gap / min_gap)
        value[picked] = -np.inf
        j = int(np.argmax(value))
        picked.append(j)
        gap = np.minimum(gap, 0.5 * np.abs(candidates - candidates[j]).sum(axis=1))
    chosen = np.array(picked, dtype=int)
    report(progress, "suggest", 2, 2, "done")
    return Suggestion(list(model.domains), candidates[chosen], spread[chosen], distance[chosen], basis)
