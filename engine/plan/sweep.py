"""Budget sweep: the plan at each budget of a geometric grid -- the compute-aware curation picture.

Shows how each domain's share moves as its data wears out, the budget at
which each domain reaches its epoch cap (``max_epochs``, or one epoch -- the
point where it starts to repeat -- without a cap), and the predicted objective
per budget for the plan and the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.errors import InputError, PlanError
from engine.plan.budget_law import BudgetAwareModel
from engine.plan.constraints import Constraints
from engine.plan.optimize import OptimizerSettings
from engine.plan.plan import PlanContext, make_plan

SWEEP_SETTINGS = OptimizerSettings(n_samples=4000, n_local=1000, shortlist=600, n_replica_optima=0)


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


def sweep_budgets(
    model: BudgetAwareModel,
    context: PlanContext,
    budgets: list[float],
    constraints: Constraints = Constraints(),
    *,
    objective: str = "mean",
    settings: OptimizerSettings = SWEEP_SETTINGS,
) -> BudgetSweep:
    """Plan at each budget (infeasible budgets are reported, not fatal)."""
    cap = float(constraints.max_epochs) if constraints.max_epochs is not None else 1.0
    shares, epochs, interval, infeasible = [], [], [], {}
    objective_rows: dict[str, list[float | None]] = {"plan": []}
    for g, budget in enumerate(budgets):
        try:
            plan = make_plan(model, context, budget, constraints, objective=objective,
                             settings=replace(settings, seed=settings.seed + g))
        except PlanError as exc:
            infeasible[f"{budget:g}"] = str(exc)
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
