"""LightGBM's round count comes from a CV pilot; explicit settings are kept."""

from __future__ import annotations

import numpy as np

from engine.laws.cv import fold_ids
from engine.laws.trees import PILOT_MAX_ROUNDS, PILOT_STEP, LightGBMLaw


def _swarm(n: int = 160, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(4), n)
    clean = 2.0 + np.exp(p @ np.array([[1.2, -0.8, 0.3, -0.7], [-0.5, 0.9, -0.6, 0.2], [0.4, 0.4, -1.0, 0.1]]).T)
    return p, clean + rng.normal(0, noise, clean.shape)


def test_pilot_picks_few_rounds_where_there_is_only_noise_and_more_where_there_is_signal():
    p, y = _swarm()
    ids = fold_ids(len(p), 5, 0)
    signal = LightGBMLaw.choose_options(p, y, ids, {})["rounds"]
    noise = np.random.default_rng(1).normal(size=y.shape)
    pure_noise = LightGBMLaw.choose_options(p, noise, ids, {})["rounds"]
    assert pure_noise < signal
    assert signal % PILOT_STEP == 0 and PILOT_STEP <= signal <= PILOT_MAX_ROUNDS
    assert pure_noise <= 60  # fitting noise only hurts held-out runs: stop almost at once


def test_pilot_keeps_explicit_rounds_and_skips_missing_values():
    p, y = _swarm()
    ids = fold_ids(len(p), 5, 0)
    assert LightGBMLaw.choose_options(p, y, ids, {"rounds": 37, "num_leaves": 15}) == {"rounds": 37, "num_leaves": 15}
    y[::7, 1] = np.nan
    rounds = LightGBMLaw.choose_options(p, y, ids, {})["rounds"]
    assert PILOT_STEP <= rounds <= PILOT_MAX_ROUNDS


def test_a_law_fitted_without_the_pilot_uses_the_fallback_and_stores_its_settings():
    p, y = _swarm(60)
    law = LightGBMLaw().fit(p, y[:, 0])
    again = LightGBMLaw.from_params(law.params)
    assert (again.rounds, again.learning_rate, again.num_leaves) == (None, 0.1, 7)
    np.testing.assert_array_equal(again.predict(p), law.predict(p))
    # a fit stored before num_leaves was an option had LightGBM's default trees
    old = {key: value for key, value in law.params.items() if key != "num_leaves"}
    assert LightGBMLaw.from_params(old).num_leaves == 31
