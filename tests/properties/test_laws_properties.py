"""Properties: smooth laws predict finite values everywhere on the simplex; degenerate input is a FitError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import FitError
from engine.laws.exponential import ExponentialLaw
from engine.laws.gp import GPLaw
from engine.laws.linear import LinearLaw
from engine.laws.trees import LightGBMLaw

K = 4
_rng = np.random.default_rng(0)
_P = _rng.dirichlet(np.full(K, 0.5), 40)
_Y = 2.0 + np.exp(_P @ np.array([2.0, -1.0, 0.5, -1.5])) + _rng.normal(0, 0.01, 40)
FITTED = {
    "linear": LinearLaw().fit(_P, _Y),
    "exponential": ExponentialLaw().fit(_P, _Y),
    "gp": GPLaw(iterations=30).fit(_P, _Y),
    "lightgbm": LightGBMLaw(rounds=100).fit(_P, _Y),
}

# Any point of the simplex, corners and faces included (zeros are common in real mixtures).
simplex_points = st.lists(
    st.one_of(st.just(0.0), st.floats(0.0, 1.0, allow_nan=False)), min_size=K, max_size=K
).filter(lambda v: sum(v) > 0).map(lambda v: np.asarray(v) / sum(v))


@settings(max_examples=60, deadline=None)
@given(point=simplex_points)
def test_predictions_finite_everywhere_on_the_simplex(point):
    for name, law in FITTED.items():
        value = law.predict(point[None, :])
        assert value.shape == (1,) and np.isfinite(value).all(), name


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), value=st.floats(-5, 5, allow_nan=False), seed=st.integers(0, 1000))
def test_exponential_on_one_mixture_or_constant_target_raises_fit_error(n, value, seed):
    rng = np.random.default_rng(seed)
    same_mixture = np.repeat(rng.dirichlet(np.ones(K))[None, :], n, axis=0)
    with pytest.raises(FitError, match="exponential"):
        ExponentialLaw(iterations=5).fit(same_mixture, rng.normal(size=n))
    with pytest.raises(FitError, match="exponential"):
        ExponentialLaw(iterations=5).fit(rng.dirichlet(np.ones(K), n), np.full(n, value))


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-6, 1e6), seed=st.integers(0, 1000), alpha=st.floats(0.05, 5.0))
def test_exponential_params_are_finite_on_any_nondegenerate_input(scale, seed, alpha):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(K, alpha), 6)
    y = scale * rng.normal(size=6)
    law = ExponentialLaw(iterations=10).fit(p, y)
    assert np.isfinite(law.c_) and np.isfinite(law.k_) and np.isfinite(law.t_).all()
    assert np.isfinite(law.predict(np.eye(K))).all()
