"""Budget sweep: shares per budget, cap points, objective of plan and baselines, infeasible budgets reported."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.plan.budget_law import BudgetAwareModel
from engine.plan.constraints import Constraints
from engine.plan.plan import PlanContext
from engine.plan.repetition import RepetitionLaw
from engine.plan.sweep import SWEEP_SETTINGS, budget_grid, sweep_budgets
from engine.plan.synthetic import truth
from engine.plan.token_law import TokenLaw

DOMAINS = ["gold", "web", "code"]
UNIQUE = np.array([1e9, 1e12, 5e10])


def test_sweep_marks_caps_and_reports_infeasible_budgets():
    model = BudgetAwareModel(truth(np.array([0.3, 0.2, 0.15]), DOMAINS), UNIQUE, RepetitionLaw(),
                             TokenLaw(np.array([410.7]), np.array([0.28]), "prior", 1e9))
    rng = np.random.default_rng(0)
    observed = rng.dirichlet(np.ones(3), 30)
    ctx = PlanContext(observed, model.base.predict(observed), [str(i) for i in range(30)], UNIQUE, [{}] * 3,
                      [None] * 3, "sweep", "h")
    grid = budget_grid(1e9, 1e13, 9)
    sweep = sweep_budgets(model, ctx, grid, Constraints(max_epochs=4, exclude=("web",)), settings=SWEEP_SETTINGS)
    assert sweep.budgets == grid and sweep.cap_epochs == 4
    # gold (1B unique) reaches 4 epochs once 4B tokens no longer fit in its share
    assert sweep.cap_budget["gold"] is not None and sweep.cap_budget["gold"] <= 1e11
    assert sweep.cap_budget["web"] is None
    # without web, 4 epochs of gold + code hold 204B tokens: larger budgets have no plan, and say why
    assert set(sweep.infeasible) == {f"{b:g}" for b in grid if b > 4 * (1e9 + 5e10)}
    assert all("allow at most" in why for why in sweep.infeasible.values())
    for g, budget in enumerate(grid):
        if f"{budget:g}" in sweep.infeasible:
            assert sweep.objective["plan"][g] is None
            continue
        shares = np.array(sweep.shares[g])
        assert shares.sum() == pytest.approx(1.0, abs=1e-9) and shares[1] == 0.0
        assert max(e for e in sweep.epochs[g] if e is not None) <= 4 + 1e-9
        assert sweep.objective["plan"][g] <= sweep.objective["uniform"][g] + 1e-9
    assert {"plan", "uniform", "natural", "unimax", "best observed run"} <= set(sweep.objective)
    assert all(len(v) == len(grid) for v in sweep.objective.values())


def test_budget_grid_is_geometric_and_checked():
    grid = budget_grid(1e8, 1e13, 12)
    assert len(grid) == 12 and grid[0] == pytest.approx(1e8) and grid[-1] == pytest.approx(1e13)
    assert np.allclose(np.diff(np.log(grid)), np.log(1e5) / 11)
    with pytest.raises(InputError, match="not a grid"):
        budget_grid(1e10, 1e8, 5)
