"""A law without real refits gets no made-up certainty: unknown optimum spread, no pessimism, honest suggest."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cli.plan import render_table
from engine.laws.objective import parse_objective
from engine.plan.budget_law import BudgetAwareModel
from engine.plan.plan import Plan, PlanContext, make_plan
from engine.plan.repetition import RepetitionLaw
from engine.plan.suggest import DISAGREEMENT, suggest_runs
from engine.plan.synthetic import PowerMixtureModel, fit_power_model, truth
from engine.plan.token_law import TokenLaw
from engine.services.fits import fit_law, model_from_fit
from engine.store.dataset import Dataset

DOMAINS = ["gold", "web", "code", "books", "news"]
UNIQUE = np.array([1e9, 1e12, 2e11, 5e10, 1e11])
TOKEN_LAW = TokenLaw(np.array([410.7]), np.array([0.28]), "prior", proxy_tokens=1e9)


def runs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    observed = rng.dirichlet(np.ones(5), n)
    return observed, truth(np.array([0.2, 0.2, 0.15, 0.1, 0.1]), DOMAINS).predict(observed) + rng.normal(0, 0.01, n)


def shifted(fitted: PowerMixtureModel) -> PowerMixtureModel:
    """The same law with replicas that are constant shifts of it (what held-out residual offsets give)."""
    b = len(fitted.replica_offsets)
    offsets = fitted.offset[None, :] + np.linspace(-0.02, 0.02, b)[:, None]
    return PowerMixtureModel(fitted.domains, fitted.targets, fitted.weights, fitted.offset, fitted.scale,
                             replica_offsets=offsets, replica_scales=np.repeat(fitted.scale[None], b, axis=0))


@pytest.fixture(scope="module")
def laws():
    observed, y = runs()
    real = fit_power_model(observed, y, DOMAINS, n_boot=16)
    ctx = PlanContext(observed, y, [f"r{i}" for i in range(len(y))], UNIQUE, [{}] * 5, [None] * 5, "s", "h")
    wrap = lambda base: BudgetAwareModel(base, UNIQUE, RepetitionLaw(), TOKEN_LAW)  # noqa: E731
    return wrap(real), wrap(shifted(real)), ctx


def test_constant_shifts_are_not_refits(laws):
    real, fake, ctx = laws
    assert real.real_refits and not fake.real_refits
    plan = make_plan(fake, ctx, 1e10)
    assert plan.optimum_spread is None and plan.optimum_spread_tv is None
    assert plan.interval_source == "held-out residuals"
    assert plan.trust["pessimism"] == 0.0
    assert any("no bootstrap refits" in note and "spread of the optimum is unknown" in note for note in plan.notes)
    lo, hi = plan.recommended.objective_interval
    assert hi - lo > 0.01  # the interval itself is still there (the residual offsets)
    back = Plan.from_dict(plan.to_dict())
    assert back.optimum_spread is None and back.interval_source == "held-out residuals"
    table = render_table(plan)
    assert "unknown: no refits" in table and "0.000" not in table.split("option")[0]


def test_real_refits_give_a_spread_and_a_pessimism_term(laws):
    real, _, ctx = laws
    plan = make_plan(real, ctx, 1e10)
    assert plan.interval_source == "bootstrap refits" and plan.trust["pessimism"] == 1.0
    assert plan.optimum_spread_tv is not None and plan.optimum_spread_tv > 0
    assert not any("no bootstrap refits" in note for note in plan.notes)


def test_suggest_follows_disagreement_and_says_when_there_is_none(laws):
    real, fake, ctx = laws
    with_refits = suggest_runs(real, make_plan(real, ctx, 1e10), 6, observed=ctx.observed)
    assert with_refits.basis == DISAGREEMENT
    assert np.isfinite(with_refits.spread).all() and (with_refits.spread > 0).all()
    without = suggest_runs(fake, make_plan(fake, ctx, 1e10), 6, observed=ctx.observed)
    assert "no bootstrap refits" in without.basis and f"'{fake.law}'" in without.basis
    assert np.isnan(without.spread).all() and without.to_dict()["spread"] == [None] * 6
    # it still suggests valid, distinct mixtures away from the runs already paid for
    assert np.allclose(without.mixtures.sum(axis=1), 1.0)
    gaps = 0.5 * np.abs(without.mixtures[:, None] - without.mixtures[None]).sum(-1)
    assert gaps[~np.eye(6, dtype=bool)].min() > 0.01
    nearest = 0.5 * np.abs(without.mixtures[:, None] - ctx.observed[None]).sum(-1).min(axis=1)
    assert nearest.min() > 0.01


def test_engine_laws_say_whether_their_replicas_are_refits():
    observed, y = runs(48)
    n = len(y)
    data = Dataset("s", [f"r{i}" for i in range(n)], DOMAINS, ["loss"], ["lower"], observed, y[:, None],
                   np.full(n, 1e9), np.full(n, 1e6), np.full(5, np.nan))
    spec = parse_objective("mean", ["loss"], ["lower"])
    found = {}
    for law in ("gp", "lightgbm"):
        base = model_from_fit({**fit_law(data, spec, law, folds=3, bootstrap=8), "objective": spec.key})
        found[law] = BudgetAwareModel(base, UNIQUE, RepetitionLaw(), TOKEN_LAW).real_refits
    assert found == {"gp": True, "lightgbm": False}


def test_a_flag_on_the_law_wins_over_the_probe(laws):
    real, _, _ = laws
    base = real.base
    flagged = PowerMixtureModel(base.domains, base.targets, base.weights, base.offset, base.scale,
                                replica_offsets=base.replica_offsets, replica_scales=base.replica_scales)
    flagged.has_refits = False
    assert not BudgetAwareModel(flagged, UNIQUE, RepetitionLaw(), TOKEN_LAW).real_refits
