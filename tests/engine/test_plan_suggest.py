"""Suggested runs narrow the plan's interval more than as many random runs."""

from __future__ import annotations

import csv
import io

import numpy as np

from engine.plan.budget_law import BudgetAwareModel
from engine.plan.constraints import Constraints
from engine.plan.optimize import OptimizerSettings
from engine.plan.plan import PlanContext, make_plan
from engine.plan.repetition import RepetitionLaw
from engine.plan.suggest import suggest_runs
from engine.plan.synthetic import fit_power_model, truth
from engine.plan.token_law import TokenLaw

DOMAINS = ["gold", "web", "code", "books", "news"]
UNIQUE = np.array([2e9, 1e12, 2e11, 5e10, 1e11])
TRUTH = truth(np.array([0.25, 0.2, 0.15, 0.1, 0.05]), DOMAINS)
TOKEN_LAW = TokenLaw(np.array([410.7]), np.array([0.28]), "prior", proxy_tokens=1e9)
SETTINGS = OptimizerSettings(n_samples=3000, n_local=500, shortlist=500, n_replica_optima=4)
BUDGET = 3e10
NOISE = 0.02


def plan_for(observed, y, seed):
    model = BudgetAwareModel(fit_power_model(observed, y, DOMAINS, n_boot=24, seed=seed), UNIQUE,
                             RepetitionLaw(), TOKEN_LAW)
    ctx = PlanContext(observed, y, [f"r{i}" for i in range(len(y))], UNIQUE, [{}] * 5, [None] * 5, "s", "h")
    return model, make_plan(model, ctx, BUDGET, Constraints(max_epochs=16), settings=SETTINGS)


def width(plan):
    lo, hi = plan.recommended.objective_interval
    return hi - lo


def test_suggested_runs_narrow_the_interval_more_than_random_runs():
    gains_suggested, gains_random = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        observed = rng.dirichlet(np.ones(5), 20)
        y = TRUTH.predict(observed) + rng.normal(0, NOISE, len(observed))
        model, plan = plan_for(observed, y, seed)
        suggestion = suggest_runs(model, plan, 8, seed=seed)
        for new, gains in ((suggestion.mixtures, gains_suggested), (rng.dirichlet(np.ones(5), 8), gains_random)):
            labels = TRUTH.predict(new) + rng.normal(0, NOISE, len(new))
            _, after = plan_for(np.vstack([observed, new]), np.concatenate([y, labels]), seed)
            gains.append(width(plan) - width(after))
    assert np.mean(gains_suggested) > np.mean(gains_random)


def test_suggestions_are_diverse_valid_mixtures_and_a_runnable_csv():
    rng = np.random.default_rng(0)
    observed = rng.dirichlet(np.ones(5), 25)
    model, plan = plan_for(observed, TRUTH.predict(observed), 0)
    suggestion = suggest_runs(model, plan, 6, min_gap=0.05)
    m = suggestion.mixtures
    assert m.shape == (6, 5) and np.allclose(m.sum(axis=1), 1) and (m >= 0).all()
    gaps = 0.5 * np.abs(m[:, None] - m[None]).sum(axis=2) + np.eye(6)
    assert gaps.min() > 0.01  # greedy max-min keeps them apart
    rows = list(csv.DictReader(io.StringIO(suggestion.to_csv())))
    assert [r["run_id"] for r in rows] == [f"suggest-{i:03d}" for i in range(1, 7)]
    assert abs(sum(float(rows[0][d]) for d in DOMAINS) - 1) < 1e-5
