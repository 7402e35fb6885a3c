"""Budget sweep: the plan at each budget of a geometric grid -- the compute-aware curation picture.

Shows how each domain's share moves as its data wears out, the budget at
which each domain reaches its epoch cap (``max_epochs``, or one epoch -- the
point where it starts to repeat -- without a cap), and the predicted objective
per budget for the plan and the baselines.

The points are planned in budget order, each warm-started from its neighbour's
plan and keeping it unless a better mixture is found by a margin beyond the
refits' noise (:func:`engine.plan.optimize.optimize`), all with one seed; then a backward pass
offers each point its larger neighbour's plan, so a better mixture found late reaches the earlier
points too: the curve moves only where the law says it should. Points after the first search
a quarter of the candidates and refine from one candidate besides the top-k
mean and the neighbour's plan (which carries the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.errors import InputError, PlanError
from engine.plan.budget_law import BudgetAwareModel
from engine.plan.constraints import Constraints
from engine.plan.optimize import OptimizerSettings
from engine.plan.plan import Plan, PlanContext, make_plan
from engine.progress import ProgressCallback, report, scaled

SWEEP_SETTINGS = OptimizerSettings(n_samples=4000, n_local=1000, shortlist=600, n_replica_optima=0)
WARM_POOL = 0.25  # share of the candidates searched at a warm-started point


@dataclass
class BudgetSweep:
    budgets: list[float]
    domains: list[str]
    shares: list[list[float]]  # (g, k) planned share per budget
    epochs: list[list[float | None]]  # (g, k)
    objective: dict[str, list[float | None]]  # option name -> (g,) predicted objective ("plan" and baselines)
    interval: list[tuple[float, float]]  # (g,) plan's 90% interval
    cap_epochs: float  # the cap the cap budgets refer to
    cap_budget: dict[str, float | None]  # first budget of the grid at which the domain reaches the cap
    infeasible: dict[str, str]  # budget -> why no plan exists there

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def budget_grid(low: float = 1e8, high: float = 1e13, points: int = 12) -> list[float]:
    if not (0 < low < high) or points < 2:
        raise InputError(f"budget grid {low:g}..{high:g} with {points} points is not a grid.",
                         hint="give 0 < low < high and at least 2 points, e.g. 1e8..1e13, 12 points.")
    return [float(v) for v in np.geomspace(low, high, points)]


def _scores(model: BudgetAwareModel, budget: float, mixtures: np.ndarray, pessimism: float) -> tuple[np.ndarray, np.ndarray]:
    """The optimiser's score (prediction + pessimism x refit spread) of each row, and that spread, in one call."""
    scorer = model.scorer(budget)
    reps = scorer.replicas(mixtures)
    spread = reps.std(axis=0) if reps.shape[0] > 1 else np.zeros(len(mixtures))
    weight = pessimism if scorer.real_refits else 0.0
    return scorer.mean(mixtures) + weight * spread, spread


def _backward_pass(model, context, budgets, order, plans, constraints, objective, settings, warm_settings) -> None:
    """Offer each point its larger neighbour's plan, from the largest budget down.

    The forward pass warm-starts each point from the previous one, so a better mixture found at a later
    point never reaches the earlier ones: with no budget dependence the curve jumped once, where the
    search happened to find it. A point whose score at its own budget the neighbour's plan beats by the
    keep margin is planned again from it (the plan is kept unless beaten, as in the forward pass)."""
    for later, i in zip(order[::-1][:-1], order[::-1][1:]):
        here, there = plans.get(i), plans.get(later)
        if not isinstance(here, Plan) or not isinstance(there, Plan):
            continue
        mine, theirs = here.mixture_array(), there.mixture_array()
        if 0.5 * np.abs(mine - theirs).sum() < 1e-6:
            continue
        (own, other), (spread, _) = _scores(model, budgets[i], np.vstack([mine, theirs]), settings.pessimism)
        noise = spread if spread > 0 else 1e-6 * max(1.0, abs(own))
        if other < own - settings.keep_margin * noise:
            try:
                plans[i] = make_plan(model, context, budgets[i], constraints, objective=objective,
                                     settings=warm_settings, warm_start=theirs)
            except PlanError:
                continue


def sweep_budgets(
    model: BudgetAwareModel,
    context: PlanContext,
    budgets: list[float],
    constraints: Constraints = Constraints(),
    *,
    objective: str = "mean",
    settings: OptimizerSettings = SWEEP_SETTINGS,
    progress: ProgressCallback | None = None,
) -> BudgetSweep:
    """Plan at each budget in increasing order, each warm-started from the previous feasible one
    (infeasible budgets are reported, not fatal). Returned in the order given."""
    cap = float(constraints.max_epochs) if constraints.max_epochs is not None else 1.0
    shares, epochs, interval, infeasible = [], [], [], {}
    objective_rows: dict[str, list[float | None]] = {"plan": []}
    order = sorted(range(len(budgets)), key=lambda i: budgets[i])
    warm_settings = replace(settings, n_samples=max(1, int(settings.n_samples * WARM_POOL)),
                            n_local=max(1, int(settings.n_local * WARM_POOL)), n_starts=1)
    plans: dict[int, Plan | PlanError] = {}
    warm = None
    for done, i in enumerate(order):
        report(progress, "sweep", done, len(budgets), f"budget {budgets[i]:.3g}")
        try:
            plans[i] = make_plan(model, context, budgets[i], constraints, objective=objective,
                                 settings=settings if warm is None else warm_settings, warm_start=warm,
                                 progress=scaled(progress, done / len(budgets), (done + 1) / len(budgets)))
            warm = plans[i].mixture_array()
        except PlanError as exc:
            plans[i] = exc
    _backward_pass(model, context, budgets, order, plans, constraints, objective, settings, warm_settings)
    report(progress, "sweep", len(budgets), len(budgets), "done")
    for g, budget in enumerate(budgets):
        plan = plans[g]
        if isinstance(plan, PlanError):
            infeasible[f"{budget:g}"] = str(plan)
            shares.append([None] * len(model.domains))
            epochs.append([None] * len(model.domains))
            interval.append((None, None))
            for row in objective_rows.values():
                row.append(None)
            continue
        shares.append(list(plan.recommended.mixture.values()))
        epochs.append(list(plan.recommended.epochs.values()))
        interval.append(plan.recommended.objective_interval)
        objective_rows["plan"].append(plan.recommended.objective)
        for option in plan.baselines:
            row = objective_rows.setdefault(option.name, [None] * g)
            row.append(option.objective)
        for row in objective_rows.values():
            row.extend([None] * (g + 1 - len(row)))
    cap_budget = {}
    for j, name in enumerate(model.domains):
        hit = [b for b, e in zip(budgets, epochs) if e[j] is not None and e[j] >= cap * (1 - 1e-3)]
        cap_budget[name] = hit[0] if hit else None
    return BudgetSweep(list(budgets), list(model.domains), shares, epochs, objective_rows, interval,
                       cap, cap_budget, infeasible)
