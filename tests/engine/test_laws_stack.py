"""The CV-weighted stack of the GP and LightGBM: its weight is chosen inside each training set
(never from the runs a CV fold scores), leans to the law that predicts better, and the stack
plans like any non-smooth law."""

from __future__ import annotations

import numpy as np
import pytest

from engine.laws.cv import fold_ids, fold_weights
from engine.laws.objective import parse_objective
from engine.laws.stack import StackLaw, blend_weight
from engine.services.fits import choose_default, fit_law, model_from_fit
from engine.store.dataset import Dataset

FAST = {"gp": {"iterations": 15}, "lightgbm": {"rounds": 80}}


def _dataset(p: np.ndarray, y: np.ndarray) -> Dataset:
    n, k = p.shape
    names = [f"t{i}" for i in range(y.shape[1])]
    return Dataset("s", [f"r{i}" for i in range(n)], [f"d{j}" for j in range(k)], names, ["lower"] * len(names),
                   p, y, np.full(n, 1e9), np.full(n, np.nan), np.full(k, np.nan))


def _two_smooth_targets(rng: np.random.Generator):
    """60 runs x 3 domains, two exponential-law targets with noise: mixtures, values, dataset, mean objective."""
    p = rng.dirichlet(np.ones(3), 60)
    y = np.column_stack([2.0 + np.exp(p @ [-1.2, 0.8, 0.4]), 1.5 + np.exp(p @ [0.9, -1.5, 0.6])])
    y += rng.normal(0, 0.01, y.shape)
    dataset = _dataset(p, y)
    return p, y, dataset, parse_objective("mean", dataset.targets, dataset.directions)


def test_blend_weight_is_the_least_squares_mix_clipped_to_0_1():
    rng = np.random.default_rng(0)
    gp, trees = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    counts = np.ones(50)
    assert blend_weight(0.3 * gp + 0.7 * trees, gp, trees, counts) == pytest.approx(0.3)
    assert blend_weight(gp + (gp - trees), gp, trees, counts) == 1.0  # beyond the GP: clipped
    assert blend_weight(trees, trees, trees, counts) == 0.5  # the two agree: nothing to choose
    # a run outside the training set (count 0) and a missing value do not count
    actual = 0.3 * gp + 0.7 * trees
    actual[0] = 100.0
    gp[1, 0] = np.nan
    counts[0] = 0
    assert blend_weight(actual, gp, trees, counts) == pytest.approx(0.3)


def test_the_weight_that_scores_a_fold_never_sees_that_fold():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), 90)
    y = 2.0 + np.exp(p @ np.array([[1.2, -0.8, 0.3, -0.7]]).T) + rng.normal(0, 0.02, (90, 1))
    ids = fold_ids(90, 5, 0)
    rows = fold_weights(ids)
    before = StackLaw.fit_batch(p, y, rows, options=FAST)
    changed = y.copy()
    changed[ids == 0] += rng.normal(0, 5.0, (int((ids == 0).sum()), 1))  # fold 0's values become garbage
    after = StackLaw.fit_batch(p, changed, rows, options=FAST)
    probe = rng.dirichlet(np.ones(4), 20)
    # the model that scores fold 0 is the same; the others saw fold 0 and moved
    assert after[0][0].weight_ == before[0][0].weight_
    np.testing.assert_allclose(after[0][0].predict(probe), before[0][0].predict(probe), rtol=1e-9, atol=1e-9)
    assert not np.allclose(after[1][0].predict(probe), before[1][0].predict(probe))


def test_the_weight_leans_to_the_law_that_predicts_better():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(4), 150)
    smooth = 2.0 + np.exp(p @ np.array([1.2, -0.8, 0.3, -0.7])) + rng.normal(0, 0.005, 150)
    steps = 2.0 + 0.5 * (p[:, 0] > 0.3) + 0.5 * (p[:, 1] > 0.2) + rng.normal(0, 0.005, 150)
    full = np.ones((1, 150))
    assert StackLaw.fit_batch(p, smooth[:, None], full, options=FAST)[0][0].weight_ > 0.7  # the GP's kind of law
    assert StackLaw.fit_batch(p, steps[:, None], full, options=FAST)[0][0].weight_ < 0.3  # the trees' kind


def test_stack_fit_has_honest_intervals():
    rng = np.random.default_rng(3)
    p, y, dataset, spec = _two_smooth_targets(rng)
    doc = fit_law(dataset, spec, "stack", folds=5, bootstrap=20)
    assert doc["bootstrap"]["kind"] == "cv_residuals"  # no refits: a conformal band from held-out runs
    assert doc["params"]["smooth"] is False
    assert 0.75 <= doc["cv_metrics"]["coverage90"] <= 1.0
    model = model_from_fit({**doc, "objective": spec.key})
    assert not model.has_refits and not model.smooth
    probe = rng.dirichlet(np.ones(3), 10)
    replicas = model.predict_targets_replicas(probe) @ model.weights
    assert replicas.shape == (20, 10) and (replicas.max(0) > replicas.min(0)).all()
    assert {"law", "per_target"} <= set(doc["params"])


def test_a_project_fits_and_plans_with_the_stack(tmp_path):
    from engine.plan.constraints import Constraints
    from engine.services.fits import fit_project
    from engine.services.ingest import ingest_files
    from engine.services.plans import make_project_plan

    url = f"sqlite:///{tmp_path / 'mixplan.sqlite'}"
    rng = np.random.default_rng(4)
    lines = ["run_id,tokens,mix:web,mix:code,mix:books,loss:web,loss:code"]
    for i, p in enumerate(rng.dirichlet(np.ones(3), 50)):
        web, code = 2.0 + np.exp(p @ [-1.2, 0.8, 0.4]), 1.5 + np.exp(p @ [0.9, -1.5, 0.6])
        lines.append(f"r{i},1000000000,{p[0]:.6f},{p[1]:.6f},{1 - p[0] - p[1]:.6f},"
                     f"{web + rng.normal(0, 0.01):.5f},{code + rng.normal(0, 0.01):.5f}")
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    ingest_files("p", [tmp_path / "runs.csv"], url=url)
    report = fit_project("p", laws=["linear", "stack"], folds=4, bootstrap=10, url=url)
    stack = next(r for r in report.rows if r.law == "stack")
    assert stack.error is None and not stack.smooth and stack.spearman > 0.8
    plan = make_project_plan("p", 25e9, Constraints(max_epochs=4), law="stack", url=url)
    assert plan.law == "stack"
    assert abs(sum(plan.recommended.mixture.values()) - 1) <= 1e-9


def test_selection_takes_the_stack_only_when_its_cv_figures_win():
    from engine.services.fits import LawRow

    def row(law, rho, mae):
        return LawRow(law, law in ("gp", "linear", "exponential"), rho, rho, mae, mae, 1, 0.0, 1.0, False)

    # ahead beyond the tie: the stack
    assert choose_default([row("gp", 0.980, 0.030), row("lightgbm", 0.975, 0.040), row("stack", 0.990, 0.025)]) == "stack"
    # tied, and its MAE far lower (more than 10 %): the stack
    assert choose_default([row("gp", 0.990, 0.030), row("lightgbm", 0.985, 0.040), row("stack", 0.9905, 0.025)]) == "stack"
    # tied and close in MAE (RegMix: 0.9883 / 0.0347 vs 0.9875 / 0.0363): the smooth law with refits
    assert choose_default([row("gp", 0.9875, 0.0363), row("lightgbm", 0.9857, 0.0399), row("stack", 0.9883, 0.0347)]) == "gp"
    assert choose_default([row("gp", 0.995, 0.004), row("lightgbm", 0.980, 0.050), row("stack", 0.995, 0.006)]) == "gp"
    # a tree law tied with a better MAE still wins over a smooth law that is much worse on MAE
    assert choose_default([row("linear", 0.990, 0.050), row("lightgbm", 0.991, 0.030)]) == "lightgbm"


def test_within_a_project_fit_the_stack_reuses_the_gp_and_trees_and_predicts_as_alone():
    from engine.laws import memo

    rng = np.random.default_rng(4)
    p, y, dataset, spec = _two_smooth_targets(rng)
    alone = fit_law(dataset, spec, "stack", folds=5, bootstrap=10)
    with memo.sharing_fits():
        gp = fit_law(dataset, spec, "gp", folds=5, bootstrap=10)
        trees = fit_law(dataset, spec, "lightgbm", folds=5, bootstrap=10)
        shared = fit_law(dataset, spec, "stack", folds=5, bootstrap=10)
    assert shared["cv_predictions"] == alone["cv_predictions"]
    assert shared["cv_metrics"] == alone["cv_metrics"]
    # the stack's GP and trees on all runs are the GP's and LightGBM's own fits
    gp_alone = model_from_fit({**gp, "objective": spec.key})
    # stored with the GP's inputs once (not once a target), and rebuilt from the store alike
    assert shared["params"]["per_target"]["gp"]["inputs"]["train_features"]
    stack_model = model_from_fit({**shared, "objective": spec.key})
    probe = rng.dirichlet(np.ones(3), 8)
    for i, law in enumerate(stack_model.laws):
        np.testing.assert_array_equal(law.gp_.predict(probe), gp_alone.laws[i].predict(probe))
    assert len(stack_model.laws) == 2 and trees["params"]["per_target"]
    # outside the block nothing is cached: a second call fits again (a different object)
    from engine.laws.gp import GPLaw

    first = memo.fit_batch(GPLaw, p, y, np.ones((1, 60)), options={"iterations": 5})
    assert memo.fit_batch(GPLaw, p, y, np.ones((1, 60)), options={"iterations": 5}) is not first
    with memo.sharing_fits():
        first = memo.fit_batch(GPLaw, p, y, np.ones((1, 60)), options={"iterations": 5})
        assert memo.fit_batch(GPLaw, p, y, np.ones((1, 60)), options={"iterations": 5}) is first
        assert memo.fit_batch(GPLaw, p, y + 1e-9, np.ones((1, 60)), options={"iterations": 5}) is not first
