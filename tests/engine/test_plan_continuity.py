"""Budget sweeps move only where the law says so; long plans report progress and can be cancelled."""

from __future__ import annotations

import io
import sys
from dataclasses import replace

import numpy as np
import pytest

from engine.cli.progress import progress_bar
from engine.plan.budget_law import BudgetAwareModel
from engine.plan.constraints import Constraints
from engine.plan.optimize import OptimizerSettings
from engine.plan.plan import PlanContext, make_plan
from engine.plan.repetition import RepetitionLaw
from engine.plan.sweep import SWEEP_SETTINGS, budget_grid, sweep_budgets
from engine.plan.synthetic import fit_power_model, truth
from engine.plan.token_law import TokenLaw
from engine.progress import Cancelled, ProgressEvent

DOMAINS = ["gold", "web", "code", "books", "news"]
UNKNOWN = np.full(5, np.nan)  # no unique-token counts: nothing repeats, no epoch cap binds
TOKEN_LAW = TokenLaw(np.array([410.7]), np.array([0.28]), "prior", proxy_tokens=1e9)


def swarm(smooth: bool, seed: int = 0):
    """A law fitted on 60 noisy runs with bootstrap refits; with unknown unique tokens its ranking of
    mixtures is the same at every budget (the token law shifts every mixture alike)."""
    rng = np.random.default_rng(seed)
    observed = rng.dirichlet(np.ones(5), 60)
    y = truth(np.array([0.2, 0.2, 0.15, 0.1, 0.1]), DOMAINS).predict(observed) + rng.normal(0, 0.01, 60)
    base = fit_power_model(observed, y, DOMAINS, n_boot=16)
    base.smooth = smooth
    model = BudgetAwareModel(base, UNKNOWN, RepetitionLaw(), TOKEN_LAW)
    ctx = PlanContext(observed, y, [f"r{i}" for i in range(60)], UNKNOWN, [{}] * 5, [None] * 5, "s", "h")
    return model, ctx


@pytest.mark.parametrize("smooth", [True, False])
def test_a_law_without_budget_dependence_gives_one_mixture_at_every_budget(smooth):
    model, ctx = swarm(smooth)
    grid = budget_grid(1e8, 1e13, 8)
    sweep = sweep_budgets(model, ctx, grid, Constraints())
    shares = np.array(sweep.shares, dtype=float)
    assert not sweep.infeasible
    np.testing.assert_array_equal(shares, np.repeat(shares[:1], len(grid), axis=0))
    # the objective still moves with the budget: only the token law's shift
    assert sweep.objective["plan"][0] > sweep.objective["plan"][-1]


def test_the_budget_order_given_does_not_change_the_curve():
    model, ctx = swarm(True)
    grid = budget_grid(1e9, 1e12, 5)
    forward = sweep_budgets(model, ctx, grid, Constraints())
    backward = sweep_budgets(model, ctx, grid[::-1], Constraints())
    np.testing.assert_array_equal(np.array(forward.shares), np.array(backward.shares)[::-1])


def test_a_warm_start_is_kept_unless_beaten_by_the_margin():
    model, ctx = swarm(True)
    plan = make_plan(model, ctx, 1e10)
    nearby = plan.mixture_array() * 0.98 + 0.02 / 5  # slightly worse than the optimum
    kept = make_plan(model, ctx, 1e10, warm_start=nearby, settings=OptimizerSettings(keep_margin=1e6))
    np.testing.assert_allclose(kept.mixture_array(), nearby, atol=1e-12)
    assert kept.chosen_from == "previous budget's plan"
    moved = make_plan(model, ctx, 1e10, warm_start=nearby, settings=OptimizerSettings(keep_margin=0.0))
    assert moved.recommended.objective <= kept.recommended.objective
    assert np.abs(moved.mixture_array() - nearby).max() > 1e-4


def test_a_budget_that_wears_data_out_still_moves_the_curve():
    """Continuity must not freeze a real effect: a small high-utility domain falls once it repeats."""
    rng = np.random.default_rng(0)
    observed = rng.dirichlet(np.ones(5), 60)
    y = truth(np.array([0.2, 0.2, 0.15, 0.1, 0.1]), DOMAINS).predict(observed)
    unique = np.array([1e9, 1e12, 2e11, 5e10, 1e11])
    model = BudgetAwareModel(fit_power_model(observed, y, DOMAINS, n_boot=16), unique, RepetitionLaw(), TOKEN_LAW)
    ctx = PlanContext(observed, y, [f"r{i}" for i in range(60)], unique, [{}] * 5, [None] * 5, "s", "h")
    sweep = sweep_budgets(model, ctx, [1e9, 1e11, 1e12], Constraints(), settings=replace(SWEEP_SETTINGS, trust_scale=np.inf))
    gold = [row[0] for row in sweep.shares]
    assert gold[0] > gold[1] > gold[2]


def test_plan_and_sweep_events_arrive_in_order():
    model, ctx = swarm(True)
    events = []
    make_plan(model, ctx, 1e10, progress=events.append)
    assert events and events[-1].fraction == 1.0
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert {e.stage for e in events} == {"search"}
    events.clear()
    sweep_budgets(model, ctx, budget_grid(1e9, 1e12, 4), Constraints(), progress=events.append)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [e.message for e in events if e.stage == "sweep"][:2] == ["budget 1e+09", "budget 1e+10"]


def test_cancelling_stops_the_sweep():
    model, ctx = swarm(True)
    seen = []

    def cancel_at_the_second_budget(event):
        seen.append(event)
        if event.stage == "sweep" and event.done == 1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        sweep_budgets(model, ctx, budget_grid(1e9, 1e12, 4), Constraints(), progress=cancel_at_the_second_budget)
    assert seen[-1].stage == "sweep" and seen[-1].done == 1  # nothing ran after the callback raised


def test_the_cli_bar_draws_on_a_terminal_and_stays_off_a_pipe(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_bar("sweep") as progress:
        for done in range(5):
            progress(ProgressEvent("sweep", done, 4, f"budget {done}"))
    assert "sweep:" in terminal.getvalue()
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    with progress_bar("sweep") as progress:
        progress(ProgressEvent("sweep", 1, 1))
    assert pipe.getvalue() == ""


def test_a_better_mixture_found_at_a_larger_budget_reaches_the_smaller_ones():
    """The backward pass: a point planned from a poor warm start gets its neighbour's better plan."""
    from engine.plan.sweep import _backward_pass

    model, ctx = swarm(True)
    grid = budget_grid(1e9, 1e11, 3)
    best = make_plan(model, ctx, grid[-1])
    poor = make_plan(model, ctx, grid[0], settings=replace(SWEEP_SETTINGS, n_samples=1, n_local=1, steps=0, n_starts=0),
                     warm_start=np.full(5, 0.2))  # one candidate, no refinement: far from the optimum
    assert 0.5 * np.abs(poor.mixture_array() - best.mixture_array()).sum() > 0.01
    plans = {0: poor, 1: make_plan(model, ctx, grid[1], warm_start=best.mixture_array()), 2: best}
    warm = replace(SWEEP_SETTINGS, n_samples=1000, n_local=250, n_starts=1)
    _backward_pass(model, ctx, grid, [0, 1, 2], plans, Constraints(), "mean", SWEEP_SETTINGS, warm)
    np.testing.assert_allclose(plans[0].mixture_array(), best.mixture_array(), atol=1e-3)
    assert plans[0].recommended.objective < poor.recommended.objective
