"""Sweep design: mixtures on the simplex, reproducible by seed, inside the bounds; budgets and parsing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from engine.train.design import Bounds, sample_mixtures, sweep_design

TOKENS = np.array([4_000_000, 400_000, 40_000])


@given(seed=st.integers(0, 2**31), n=st.integers(1, 40))
@settings(max_examples=30, deadline=None)
def test_mixtures_lie_on_the_simplex(seed, n):
    mixtures = sample_mixtures(TOKENS, n, seed)
    assert mixtures.shape == (n, 3)
    assert (mixtures >= 0).all()
    np.testing.assert_allclose(mixtures.sum(axis=1), 1.0, atol=1e-12)


def test_same_seed_same_design_other_seed_other_design():
    np.testing.assert_array_equal(sample_mixtures(TOKENS, 16, 5), sample_mixtures(TOKENS, 16, 5))
    assert not np.allclose(sample_mixtures(TOKENS, 16, 5), sample_mixtures(TOKENS, 16, 6))


def test_bounds_are_respected():
    bounds = Bounds(lo=np.array([0.2, 0.0, 0.05]), hi=np.array([0.6, 0.5, 0.3]))
    mixtures = sample_mixtures(TOKENS, 50, 1, bounds)
    assert (mixtures >= bounds.lo - 1e-12).all() and (mixtures <= bounds.hi + 1e-12).all()
    with pytest.raises(InputError, match="lower bounds sum"):
        sample_mixtures(TOKENS, 5, 1, Bounds(lo=np.array([0.5, 0.4, 0.2]), hi=np.ones(3)))


def test_design_centres_on_the_token_prior_but_covers_small_domains():
    mixtures = sample_mixtures(TOKENS, 400, 2)
    mean = mixtures.mean(axis=0)
    assert mean[0] > mean[1] > mean[2]  # follows the token distribution
    assert mixtures[:, 2].max() > 0.3  # the smallest domain still gets large shares in some runs


def test_sweep_design_crosses_mixtures_and_budgets():
    points = sweep_design(["code", "prose", "legal"], TOKENS.tolist(), 4, [100_000, 1_000_000], seed=0)
    assert len(points) == 8 and len({p.name for p in points}) == 8
    assert [p.mixture for p in points[:4]] == [p.mixture for p in points[4:]]
    assert {p.tokens for p in points} == {100_000, 1_000_000}
    assert points[0].name == "sweep-s0-m000-100k" and points[4].name == "sweep-s0-m000-1M"
