"""Aioli (Chen et al. 2024): LearnParams, the normalisation and the exponentiated-gradient update."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.train.aioli import (
    AioliOptions,
    AioliPolicy,
    exponentiated_gradient_step,
    learn_params,
    normalise_interactions,
    perturbation_matrix,
    solve_interactions,
)

# Hand-worked example, 3 domains. Losses measured in one LearnParams sweep (one-hot sub-runs):
#   L0 = (3.0, 2.5, 4.0)
#   after a sub-run on domain 0: (2.8, 2.5, 3.9)  -> drop column 0 = (0.2, 0.0, 0.1)
#   after a sub-run on domain 1: (2.8, 2.2, 3.8)  -> drop column 1 = (0.0, 0.3, 0.1)
#   after a sub-run on domain 2: (2.7, 2.2, 3.6)  -> drop column 2 = (0.1, 0.0, 0.2)
# so A = [[0.2, 0, 0.1], [0, 0.3, 0], [0.1, 0.1, 0.2]]: no negative entry, sum 1.0, so normalising leaves it.
# Column sums (0.3, 0.4, 0.3); from uniform p with eta = 1:
#   p ∝ (e^0.3, e^0.4, e^0.3) = (1.349859, 1.491825, 1.349859), sum 4.191543
#   p = (0.322043, 0.355913, 0.322043).
HAND_A = np.array([[0.2, 0.0, 0.1], [0.0, 0.3, 0.0], [0.1, 0.1, 0.2]])
HAND_P1 = np.array([0.322043, 0.355913, 0.322043])
# Second round, A2 has a negative entry: shift by +0.1 -> [[0.4,0,0.1],[0.1,0.3,0.1],[0.2,0.1,0.2]], sum 1.5,
# normalised column sums (0.7, 0.4, 0.4)/1.5 = (0.466667, 0.266667, 0.266667); with eta = 2:
#   p1 * exp(2 * sums) = (0.322043*2.542972, 0.355913*1.704605, 0.322043*1.704605)
#                      = (0.818947, 0.606691, 0.548957), sum 1.974595
#   p2 = (0.414742, 0.307248, 0.278010).
HAND_A2 = np.array([[0.3, -0.1, 0.0], [0.0, 0.2, 0.0], [0.1, 0.0, 0.1]])
HAND_P2 = np.array([0.414742, 0.307248, 0.278010])


class LinearOracle:
    """A model whose validation losses follow L <- L - A w per sub-run exactly (plus optional noise)."""

    def __init__(self, a: np.ndarray, losses: np.ndarray, steps_per_subrun: int, noise: float = 0.0, seed: int = 0):
        self.a, self.losses, self.steps = a, np.array(losses, dtype=float), steps_per_subrun
        self.noise, self.rng = noise, np.random.default_rng(seed)

    def train(self, weights: np.ndarray, steps: int) -> None:
        self.losses -= self.a @ weights * steps / self.steps

    def evaluate(self) -> np.ndarray:
        return self.losses + self.noise * self.rng.standard_normal(len(self.losses))


def test_hand_worked_learn_params_and_update():
    oracle = LinearOracle(HAND_A, [3.0, 2.5, 4.0], steps_per_subrun=5)
    options = AioliOptions(lp_steps=5, one_hot_factor=1.0)
    a = learn_params(oracle.train, oracle.evaluate, oracle.evaluate(), options, np.random.default_rng(0))
    np.testing.assert_allclose(a, HAND_A, atol=1e-12)
    np.testing.assert_allclose(oracle.losses, [2.7, 2.2, 3.6], atol=1e-12)  # the hand-worked trajectory
    np.testing.assert_allclose(normalise_interactions(a), HAND_A, atol=1e-12)
    p1 = exponentiated_gradient_step(np.full(3, 1 / 3), normalise_interactions(a), eta=1.0)
    np.testing.assert_allclose(p1, HAND_P1, atol=1e-6)
    p2 = exponentiated_gradient_step(p1, normalise_interactions(HAND_A2), eta=2.0)
    np.testing.assert_allclose(p2, HAND_P2, atol=1e-6)


def test_policy_runs_learn_params_then_trains_on_the_updated_mixture():
    options = AioliOptions(rounds=2, lp_rounds=1, lp_steps=5, one_hot_factor=1.0, normalize_a=True, eta=1.0)
    policy = AioliPolicy(["a", "b", "c"], total_steps=40, options=options, seed=3)
    oracle = LinearOracle(HAND_A, [3.0, 2.5, 4.0], steps_per_subrun=5)
    seen = []
    for step in range(20):  # round 0: 15 LearnParams steps, then 5 on the updated p
        w = policy.mixture_for_step(step, oracle.evaluate, tokens_seen=step * 100)
        seen.append(w.copy())
        oracle.train(w, 1)
    one_hots = {tuple(np.round(w, 6)) for w in seen[:15]}
    assert one_hots == {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)}
    assert all(np.array_equal(seen[i], seen[i - i % 5]) for i in range(15))  # 5 contiguous steps a domain
    for w in seen[15:]:
        np.testing.assert_allclose(w, HAND_P1, atol=1e-6)
    assert policy.schedule == [{"tokens": 0, "mixture": {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}},
                               {"tokens": 1500, "mixture": dict(zip("abc", policy.weights.tolist()))}]
    np.testing.assert_allclose(policy.matrices[0], HAND_A, atol=1e-12)


def test_smoothed_one_hot_sub_runs_are_unmixed_exactly():
    weights = perturbation_matrix(3, 0.6)
    np.testing.assert_allclose(weights, [[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])
    drops = HAND_A @ weights.T  # G[:, j] = A w_j
    np.testing.assert_allclose(solve_interactions(drops, 0.6), HAND_A, atol=1e-12)


def test_learn_params_recovers_a_known_linear_law_within_tolerance():
    rng = np.random.default_rng(11)
    k = 4
    true_a = rng.uniform(0.0, 0.05, size=(k, k)) + np.diag(rng.uniform(0.05, 0.15, size=k))
    oracle = LinearOracle(true_a, np.full(k, 4.0), steps_per_subrun=10, noise=0.002, seed=5)
    options = AioliOptions(lp_rounds=8, lp_steps=10, one_hot_factor=0.7)
    estimate = learn_params(oracle.train, oracle.evaluate, oracle.evaluate(), options, np.random.default_rng(1))
    assert np.abs(estimate - true_a).max() < 0.01
    assert (np.argmax(estimate, axis=1) == np.arange(k)).all()  # each domain helps itself most


def test_options_are_checked():
    with pytest.raises(InputError, match="one_hot_factor"):
        AioliOptions(one_hot_factor=0.0)
    with pytest.raises(InputError, match="LearnParams needs"):
        AioliPolicy(["a", "b", "c"], total_steps=20, options=AioliOptions(rounds=2, lp_steps=4), seed=0)
