"""The GP's batched prediction of many candidates (one cross-kernel per chunk, every (target, refit)
weight column in one product) equals predicting each target and each refit on its own."""

from __future__ import annotations

import numpy as np
import pytest

from engine.laws.bootstrap import bootstrap_counts
from engine.laws.gp import GPLaw
from engine.laws.objective import FittedObjective, ObjectiveSpec


@pytest.mark.parametrize("shared", ["never", "always"])
def test_batched_predict_equals_per_target_and_per_refit(shared):
    rng = np.random.default_rng(3)
    n, k, t = 60, 4, 3
    mixtures = rng.dirichlet(np.full(k, 0.5), n)
    targets = np.stack([np.log(mixtures + 0.01) @ rng.normal(size=k) + rng.normal(0, 0.05, n) for _ in range(t)], 1)
    options = {"iterations": 10, "shared_kernel": shared}
    full = GPLaw.fit_batch(mixtures, targets, np.ones((1, n)), options=options)[0]
    refits = GPLaw.fit_refits(mixtures, targets, bootstrap_counts(n, 7, 0), full, options=options)
    replicas = [GPLaw.unpack_replicas(GPLaw.pack_replicas([row[i] for row in refits]), full[i]) for i in range(t)]
    spec = ObjectiveSpec("w", ["a", "b", "c"], np.array([0.5, -0.2, 0.7]))
    model = FittedObjective("gp", True, spec, list("wxyz"), full, replicas, interval_scale=1.7)
    assert model._batched is not None and model._batched.shared == (shared == "always")
    # more candidates than one chunk, so the chunks and the thread pool are exercised
    model._batched.MAX_ELEMENTS = 50 * n * (1 if shared == "always" else t)
    candidates = rng.dirichlet(np.full(k, 0.3), 333)

    point = np.stack([law.predict(candidates) for law in full], 1)
    one_by_one = np.stack([rep.predict(candidates) for rep in replicas], 2)  # (B, m, t)
    calibrated = point[None] + 1.7 * (one_by_one - point[None])

    np.testing.assert_allclose(model.predict_targets(candidates), point, atol=1e-6, rtol=0)
    np.testing.assert_allclose(model.predict_targets_replicas(candidates), calibrated, atol=1e-6, rtol=0)
    targets_hat, objective_reps = model.predict_with_replicas(candidates)
    np.testing.assert_allclose(targets_hat, point, atol=1e-6, rtol=0)
    np.testing.assert_allclose(objective_reps, calibrated @ spec.weights, atol=1e-6, rtol=0)
    assert np.ptp(objective_reps, axis=0).max() > 1e-3  # the refits differ, so the comparison means something

    # the differentiable path the planner's gradient steps use (one cross-kernel when shared)
    import torch

    p = torch.as_tensor(candidates, dtype=torch.float64)
    mean, reps = model.predict_targets_and_replicas_torch(p)
    np.testing.assert_allclose(mean.detach().numpy(), point, atol=1e-6, rtol=0)
    np.testing.assert_allclose(reps.detach().numpy(), calibrated, atol=1e-6, rtol=0)
    p.requires_grad_(True)
    model.predict_targets_torch(p).sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0

    # the objective's own path (refit weights summed over targets first when the kernel is shared) gives the
    # same objective, refits and gradient as combining every target's
    p = torch.as_tensor(candidates[:40], dtype=torch.float64).requires_grad_(True)
    objective, objective_refits = model.predict_objective_and_replicas_torch(p)
    np.testing.assert_allclose(objective.detach().numpy(), point[:40] @ spec.weights, atol=1e-6, rtol=0)
    np.testing.assert_allclose(objective_refits.detach().numpy(), calibrated[:, :40] @ spec.weights, atol=1e-6, rtol=0)
    (objective + objective_refits.std(dim=0)).sum().backward()
    q = torch.as_tensor(candidates[:40], dtype=torch.float64).requires_grad_(True)
    mean, reps = model.predict_targets_and_replicas_torch(q)
    w = torch.as_tensor(spec.weights)
    (mean @ w + (reps @ w).std(dim=0)).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), atol=1e-8, rtol=1e-8)
