"""Each parametric law recovers known parameters from synthetic data drawn from it, with noise."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import FitError
from engine.laws.exponential import ExponentialLaw
from engine.laws.gp import GPLaw
from engine.laws.linear import LinearLaw
from engine.laws.power import ChinchillaLaw, TokenPowerLaw
from engine.laws.trees import LightGBMLaw


def _mixtures(n: int, k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), n)


def test_linear_recovers_intercept_and_centred_coefficients():
    rng = np.random.default_rng(1)
    p = _mixtures(200, 5)
    a = np.array([0.8, -0.3, 0.1, -0.4, -0.2])  # sums to 0: the identifiable form
    y = 3.0 + p @ a + rng.normal(0, 0.01, len(p))
    law = LinearLaw().fit(p, y)
    # noise 0.01 over 200 runs: coefficients within 0.02, intercept within 0.005
    assert law.intercept_ == pytest.approx(3.0, abs=0.005)
    np.testing.assert_allclose(law.coef_, a, atol=0.02)


def test_exponential_recovers_floor_scale_and_exponents():
    rng = np.random.default_rng(2)
    p = _mixtures(300, 6)
    t = np.array([1.5, -1.0, 0.5, -2.0, 0.8, 0.2])  # sums to 0
    y = 2.0 + 1.5 * np.exp(p @ t) + rng.normal(0, 0.01, len(p))
    law = ExponentialLaw().fit(p, y)
    # 1% noise relative to the spread: c and k within 0.1, exponents within 0.1
    assert law.c_ == pytest.approx(2.0, abs=0.1)
    assert law.k_ == pytest.approx(1.5, abs=0.1)
    np.testing.assert_allclose(law.t_, t, atol=0.1)
    assert np.abs(law.predict(p) - (2.0 + 1.5 * np.exp(p @ t))).max() < 0.02


def test_exponential_shrugs_off_outliers():
    rng = np.random.default_rng(3)
    p = _mixtures(200, 4)
    t = np.array([1.0, -1.0, 0.5, -0.5])
    y = 1.0 + np.exp(p @ t) + rng.normal(0, 0.005, len(p))
    y[:6] += 3.0  # a few broken runs
    law = ExponentialLaw().fit(p, y)
    np.testing.assert_allclose(law.t_, t, atol=0.1)


def test_token_power_law_recovers_chinchilla_like_curve():
    rng = np.random.default_rng(4)
    tokens = np.geomspace(1e7, 1e10, 30)
    y = 1.8 + 410.0 * tokens**-0.28 * (1 + rng.normal(0, 0.002, len(tokens)))
    law = TokenPowerLaw().fit(tokens, y)
    # 0.2% multiplicative noise: E within 0.05, beta within 0.02, B within 15%
    assert law.E_ == pytest.approx(1.8, abs=0.05)
    assert law.beta_ == pytest.approx(0.28, abs=0.02)
    assert law.B_ == pytest.approx(410.0, rel=0.15)
    np.testing.assert_allclose(TokenPowerLaw.from_params(law.params).predict(tokens), law.predict(tokens))


def test_chinchilla_form_recovers_size_and_token_terms():
    rng = np.random.default_rng(5)
    n = rng.choice([1e6, 1e7, 1e8, 1e9], 60)
    d = rng.permutation(np.geomspace(1e8, 1e11, 60))
    y = (1.7 + 406.4 * n**-0.34 + 410.7 * d**-0.28) * (1 + rng.normal(0, 0.002, 60))
    law = ChinchillaLaw().fit(n, d, y)
    # exponents within 0.02, E within 0.1, scales within 20%
    assert law.alpha_ == pytest.approx(0.34, abs=0.02)
    assert law.beta_ == pytest.approx(0.28, abs=0.02)
    assert law.E_ == pytest.approx(1.7, abs=0.1)
    assert law.A_ == pytest.approx(406.4, rel=0.2)
    assert law.B_ == pytest.approx(410.7, rel=0.2)


def test_power_laws_refuse_a_single_scale():
    with pytest.raises(FitError, match="same scale"):
        TokenPowerLaw().fit(np.full(5, 1e9), np.linspace(3, 2, 5))


def test_gp_interpolates_a_smooth_law_and_stays_deterministic():
    rng = np.random.default_rng(6)
    p = _mixtures(80, 4)
    truth = 3.0 + np.exp(p @ np.array([1.0, -1.0, 0.5, -0.5]))
    y = truth + rng.normal(0, 0.01, len(p))
    test = _mixtures(50, 4, seed=9)
    law = GPLaw(iterations=40).fit(p, y)
    again = GPLaw(iterations=40).fit(p, y)
    expected = 3.0 + np.exp(test @ np.array([1.0, -1.0, 0.5, -0.5]))
    assert np.abs(law.predict(test) - expected).mean() < 0.03
    np.testing.assert_array_equal(law.predict(test), again.predict(test))
    np.testing.assert_array_equal(GPLaw.from_params(law.params).predict(test), law.predict(test))


def test_lightgbm_round_trips_through_params_and_fits_few_runs():
    p = _mixtures(30, 3)
    y = p @ np.array([1.0, 2.0, 3.0])
    law = LightGBMLaw(rounds=200).fit(p, y)
    assert np.corrcoef(law.predict(p), y)[0, 1] > 0.9  # a 30-run project still gets splits
    np.testing.assert_array_equal(LightGBMLaw.from_params(law.params).predict(p), law.predict(p))


def test_batched_fit_matches_single_fits():
    rng = np.random.default_rng(7)
    p = _mixtures(60, 3)
    y = np.column_stack([p @ [1.0, 2.0, 3.0], p @ [3.0, 1.0, 0.0]]) + rng.normal(0, 0.01, (60, 2))
    weights = np.ones((2, 60))
    weights[1, :20] = 0
    batch = LinearLaw.fit_batch(p, y, weights)
    single = LinearLaw().fit(p[20:], y[20:, 1])
    np.testing.assert_allclose(batch[1][1].coef_, single.coef_, atol=1e-9)
