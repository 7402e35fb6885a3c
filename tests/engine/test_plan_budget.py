"""Budgets, repetition and token laws of the planner."""

from __future__ import annotations

import numpy as np
import pytest

from engine.plan.repetition import RepetitionLaw, effective_tokens, fit_repetition, repeated_runs
from engine.plan.token_law import SINGLE_BUDGET_NOTE, fit_token_law


def test_muennighoff_effective_tokens_match_the_formula():
    unique = np.array([1e9])
    r_star = 15.4
    for epochs in [0.5, 1.0, 4.0, 40.0]:
        tokens = epochs * 1e9
        repeats = max(0.0, epochs - 1)
        expected = min(tokens, 1e9) + 1e9 * r_star * (1 - np.exp(-repeats / r_star))
        assert effective_tokens(np.array([tokens]), unique, "muennighoff", r_star)[0] == pytest.approx(expected)
    # saturates at U * (1 + R*)
    assert effective_tokens(np.array([1e15]), unique, "muennighoff", r_star)[0] == pytest.approx(1e9 * 16.4)


def test_goyal_halves_the_worth_of_each_epoch_every_tau():
    unique = np.array([1.0])
    tau = 2.0
    # epochs 1, 2, 3 are worth 1, 0.5**0.5, 0.5**1
    worth = effective_tokens(np.array([1.0, 2.0, 3.0, 2.5]), np.ones(4), "goyal", tau)
    assert worth == pytest.approx([1.0, 1 + 0.5 ** 0.5, 1 + 0.5 ** 0.5 + 0.5, 1 + 0.5 ** 0.5 + 0.5 * 0.5])
    assert RepetitionLaw("goyal", tau).effective_tokens(np.array([3.0]), unique)[0] == pytest.approx(worth[2])


def test_unknown_unique_tokens_never_repeat():
    worth = effective_tokens(np.array([5e9, 5e9]), np.array([np.nan, 1e9]), "muennighoff", 15.4)
    assert worth[0] == 5e9 and worth[1] < 5e9


def test_repetition_scale_is_fitted_when_runs_repeat_and_prior_otherwise():
    rng = np.random.default_rng(0)
    k, n = 4, 120
    unique = np.array([2e8, 1e9, 5e9, 1e11])
    mixtures = rng.dirichlet(np.ones(k), n)
    tokens = rng.choice([1e9, 4e9, 1.6e10], n)
    true = RepetitionLaw("muennighoff", 3.0, "fitted")
    eff = true.effective_tokens(mixtures * tokens[:, None], unique)
    total = eff.sum(axis=1)
    y = 3.0 + (eff / total[:, None]) @ np.array([-0.6, -0.2, 0.1, 0.3]) - 0.3 * np.log(total / 1e9)
    fitted = fit_repetition(mixtures, tokens, unique, y[:, None] + rng.normal(0, 1e-3, (n, 1)))
    assert fitted.source == "fitted" and 1.5 <= fitted.scale <= 6.0
    assert repeated_runs(mixtures, tokens, unique).sum() > 5
    fresh = fit_repetition(mixtures, np.full(n, 1e6), unique, y[:, None])
    assert fresh.source == "prior" and fresh.scale == pytest.approx(15.4) and "prior" in fresh.note


def _no_curves():
    return dict(curve_run=np.zeros(0, int), curve_target=np.zeros(0, int), curve_tokens=np.zeros(0),
                curve_value=np.zeros(0))


def test_token_exponent_is_fitted_from_learning_curves():
    rng = np.random.default_rng(1)
    runs, points = 10, np.geomspace(1e7, 1e9, 12)
    run = np.repeat(np.arange(runs), len(points))
    tokens = np.tile(points, runs)
    offsets = rng.uniform(2.5, 3.5, runs)
    value = offsets[run] + 300.0 * tokens ** -0.35
    law = fit_token_law(directions=["lower"], mixtures=rng.dirichlet(np.ones(3), runs), final=np.zeros((runs, 1)),
                        tokens=np.full(runs, 1e9), model_params=np.full(runs, 1e6), curve_run=run,
                        curve_target=np.zeros_like(run), curve_tokens=tokens, curve_value=value)
    assert law.source == "learning curves"
    assert law.exponent[0] == pytest.approx(0.35, abs=0.03)
    assert law.coefficient[0] == pytest.approx(300.0, rel=0.3)


def test_token_law_with_one_budget_is_the_prior_and_says_so():
    law = fit_token_law(directions=["lower", "higher"], mixtures=np.full((5, 2), 0.5), final=np.zeros((5, 2)),
                        tokens=np.full(5, 1e9), model_params=np.full(5, np.nan), **_no_curves())
    assert law.source == "prior"
    assert SINGLE_BUDGET_NOTE in law.notes
    assert law.coefficient[1] == 0.0  # no token prior for higher-is-better targets
    shift = law.shift(np.array([1e9, 1e10]), 1e10, None)
    assert shift[0, 0] == pytest.approx(0.0) and shift[1, 0] < 0


def _curves(values_of, runs=8, points=np.geomspace(1e7, 1e9, 10)):
    run = np.repeat(np.arange(runs), len(points))
    tokens = np.tile(points, runs)
    return dict(curve_run=run, curve_target=np.zeros_like(run), curve_tokens=tokens,
                curve_value=values_of(run, tokens))


def _law(directions, runs=8, **curves):
    rng = np.random.default_rng(0)
    return fit_token_law(directions=directions, mixtures=rng.dirichlet(np.ones(3), runs),
                         final=np.zeros((runs, len(directions))), tokens=np.full(runs, 1e9),
                         model_params=np.full(runs, 1e6), targets=["t"] * len(directions), **curves)


def test_curves_the_fit_cannot_explain_fall_back_to_the_prior_with_the_reason():
    flat = _law(["lower"], **_curves(lambda run, tokens: 3.0 + 0.1 * run))  # no token effect at all
    rising = _law(["lower"], **_curves(lambda run, tokens: 2.0 + 1e-9 * tokens))  # loss grows with tokens
    for law in (flat, rising):
        assert law.source == "prior" and law.target_sources == ("prior",)
        assert (law.coefficient[0], law.exponent[0]) == (410.7, 0.28)
        assert any("token law of t: the fit did not hold" in n and "learning curves:" in n for n in law.notes)


def test_the_curve_fit_is_power_py_with_one_offset_per_run():
    from engine.laws.power import TokenPowerLaw

    rng = np.random.default_rng(3)
    offsets = rng.uniform(2.5, 3.5, 8)
    curves = _curves(lambda run, tokens: offsets[run] + 300.0 * tokens ** -0.35 + rng.normal(0, 1e-3, run.size),
                     points=np.geomspace(1e8, 1e9, 10))  # no warm-up points for fit_token_law to drop
    law = _law(["lower"], **curves)
    direct = TokenPowerLaw().fit(curves["curve_tokens"], curves["curve_value"], groups=curves["curve_run"])
    assert law.target_sources == ("learning curves",)
    assert (law.coefficient[0], law.exponent[0]) == (direct.B_, direct.beta_)
    assert law.exponent[0] == pytest.approx(0.35, abs=0.03)


def test_higher_is_better_curves_are_fitted_with_a_rising_term():
    law = _law(["higher"], **_curves(lambda run, tokens: 0.6 - 40.0 * tokens ** -0.3))
    assert law.target_sources == ("learning curves",) and law.coefficient[0] < 0
    assert law.exponent[0] == pytest.approx(0.3, abs=0.03)
    assert law.shift(np.array([1e10]), 1e10, None)[0, 0] > 0  # more tokens: higher accuracy


def test_runs_of_two_model_sizes_fit_the_chinchilla_form():
    rng = np.random.default_rng(2)
    sizes, budgets = np.array([2e7, 2e8]), np.array([1e8, 1e9, 1e10])
    n = 60
    params = sizes[rng.integers(0, 2, n)]
    tokens = budgets[rng.integers(0, 3, n)]
    mixtures = rng.dirichlet(np.ones(3), n)
    y = 1.7 + mixtures @ np.array([0.3, -0.2, 0.1]) + 406.4 * params ** -0.34 + 410.7 * tokens ** -0.28
    law = fit_token_law(directions=["lower"], mixtures=mixtures, final=y[:, None], tokens=tokens, model_params=params,
                        targets=["loss"], **_no_curves())
    assert law.source == "model sizes (Chinchilla form)" and not law.size_is_prior()
    assert law.exponent[0] == pytest.approx(0.28, abs=0.02)
    assert law.size_exponent[0] == 0.34  # two sizes fix the size term's scale; its exponent is the prior's
    assert law.size_coefficient[0] == pytest.approx(406.4, rel=0.05)
    expected = 406.4 * (1e9 ** -0.34 - law.proxy_params ** -0.34)
    assert law.shift(np.array([law.proxy_tokens]), 1e10, 1e9)[0, 0] == pytest.approx(expected, rel=0.05)
    three = np.array([2e7, 2e8, 2e9])[rng.integers(0, 3, n)]
    y3 = 1.7 + mixtures @ np.array([0.3, -0.2, 0.1]) + 406.4 * three ** -0.34 + 410.7 * tokens ** -0.28
    law3 = fit_token_law(directions=["lower"], mixtures=mixtures, final=y3[:, None], tokens=tokens,
                         model_params=three, targets=["loss"], **_no_curves())
    assert law3.size_exponent[0] == pytest.approx(0.34, abs=0.02) and law3.exponent[0] == pytest.approx(0.28, abs=0.02)


def test_runs_at_several_budgets_fit_the_token_term_across_runs():
    rng = np.random.default_rng(5)
    n = 40
    tokens = np.array([1e8, 1e9, 1e10])[rng.integers(0, 3, n)]
    mixtures = rng.dirichlet(np.ones(3), n)
    y = 2.0 + mixtures @ np.array([0.4, -0.1, 0.2]) + 410.7 * tokens ** -0.28
    law = fit_token_law(directions=["lower"], mixtures=mixtures, final=y[:, None], tokens=tokens,
                        model_params=np.full(n, np.nan), targets=["loss"], **_no_curves())
    assert law.source == "several budgets" and law.exponent[0] == pytest.approx(0.28, abs=0.01)
    assert SINGLE_BUDGET_NOTE not in law.notes


def test_a_repetition_scale_beyond_the_searched_range_is_not_called_fitted():
    """Runs whose repeats are worth as much as fresh data (R* far above the grid) only bound the scale: the plan
    keeps the published prior and says why, instead of a 'fitted' value that is the grid's end."""
    rng = np.random.default_rng(0)
    k, n = 4, 120
    unique = np.array([2e8, 1e9, 5e9, 1e11])
    mixtures = rng.dirichlet(np.ones(k), n)
    tokens = rng.choice([1e9, 4e9, 1.6e10], n)
    eff = RepetitionLaw("muennighoff", 1e6, "fitted").effective_tokens(mixtures * tokens[:, None], unique)
    total = eff.sum(axis=1)
    y = 3.0 + (eff / total[:, None]) @ np.array([-0.6, -0.2, 0.1, 0.3]) - 0.3 * np.log(total / 1e9)
    law = fit_repetition(mixtures, tokens, unique, y[:, None] + rng.normal(0, 1e-3, (n, 1)))
    assert law.source == "prior" and law.scale == pytest.approx(15.4)
    assert "edge of the searched range" in law.note and "could not be fitted" in law.note
