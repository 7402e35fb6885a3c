"""The contract every mixing law keeps (scikit-learn's estimator contract plus params/from_params),
checked on every law in the registry, and the GP's hand-written maths against independent code."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from engine.errors import FitError
from engine.laws import gp as gp_module
from engine.laws.registry import MIXTURE_LAWS

# Small settings so the whole contract runs in seconds; the contract does not depend on them.
FAST = {"linear": {}, "exponential": {}, "gp": {"iterations": 15}, "lightgbm": {"rounds": 60},
        "stack": {"gp": {"iterations": 15}, "lightgbm": {"rounds": 60}}}
K = 4


def _data(n: int = 48, targets: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(K), n)
    t = np.array([[1.2, -0.8, 0.3, -0.7], [-0.5, 0.9, -0.6, 0.2]])[:targets]
    y = 2.0 + np.exp(p @ t.T) + rng.normal(0, 0.01, (n, targets))
    return p, y


@pytest.fixture(params=sorted(MIXTURE_LAWS))
def law_cls(request):
    return MIXTURE_LAWS[request.param]


def test_constructor_stores_its_options_and_nothing_else(law_cls):
    options = FAST[law_cls.name]
    law = law_cls(**options)
    names = set(inspect.signature(law_cls).parameters)
    assert set(vars(law)) == names  # one attribute per option, nothing learned
    for name, value in options.items():
        assert getattr(law, name) == value


def test_fit_returns_self_and_predict_before_fit_is_a_clear_error(law_cls):
    p, y = _data()
    law = law_cls(**FAST[law_cls.name])
    with pytest.raises(FitError, match=rf"{law_cls.name}: predict was called before fit"):
        law.predict(p)
    assert law.fit(p, y[:, 0]) is law
    assert law.predict(p).shape == (len(p),)


def test_params_round_trip_bit_for_bit(law_cls):
    p, y = _data()
    law = law_cls(**FAST[law_cls.name]).fit(p, y[:, 0])
    stored = json.loads(json.dumps(law.params))  # what the store keeps
    again = law_cls.from_params(stored)
    assert again.params == law.params
    probe = np.random.default_rng(5).dirichlet(np.ones(K), 30)
    np.testing.assert_array_equal(again.predict(probe), law.predict(probe))


@pytest.mark.parametrize("extra", [{}, {"shared_kernel": "always"}], ids=["own options", "gp shares its kernel"])
def test_predicting_every_target_at_once_equals_predicting_each(law_cls, extra):
    """``predict_targets`` (the CV's and the stack's batched path) gives each law's own predictions; the GP's
    shared-kernel path builds one cross-kernel for all targets, so it is checked with and without it."""
    p, y = _data(targets=2)
    options = {**FAST[law_cls.name], **(extra if law_cls.name == "gp" else {})}
    row = law_cls.fit_batch(p, y, np.ones((1, len(p))), options=options)[0]
    probe = np.random.default_rng(3).dirichlet(np.ones(K), 17)
    expected = np.stack([law.predict(probe) for law in row], axis=1)
    np.testing.assert_allclose(law_cls.predict_targets(row, probe), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(name for name, cls in MIXTURE_LAWS.items() if cls.has_refits))
def test_stored_refits_predict_as_the_refits_themselves(name):
    law_cls = MIXTURE_LAWS[name]
    p, y = _data()
    options = FAST[law_cls.name]
    full = law_cls.fit_batch(p, y, np.ones((1, len(p))), options=options)[0]
    counts = np.random.default_rng(2).multinomial(len(p), np.full(len(p), 1 / len(p)), size=5).astype(float)
    refits = [row[0] for row in law_cls.fit_refits(p, y, counts, full, options=options)]
    stored = json.loads(json.dumps(law_cls.pack_replicas(refits)))  # what the store keeps
    replicas = law_cls.unpack_replicas(stored, full[0])
    probe = np.random.default_rng(7).dirichlet(np.ones(K), 25)
    expected = np.stack([law.predict(probe) for law in refits])
    tolerance = 1e-5 if name == "gp" else 1e-9  # the GP stores its refits' weights in float32
    np.testing.assert_allclose(replicas.predict(probe), expected, rtol=tolerance, atol=tolerance)
    if law_cls.smooth:
        with torch.no_grad():
            torch_out = replicas.predict_torch(torch.as_tensor(probe, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(torch_out, expected, rtol=tolerance, atol=tolerance)


def test_batched_fit_with_0_1_weights_equals_a_fit_on_the_subset(law_cls):
    p, y = _data(n=60)
    keep = np.random.default_rng(3).random(len(p)) < 0.7
    options = FAST[law_cls.name]
    batched = law_cls.fit_batch(p, y, np.stack([keep, ~keep]).astype(float), options=options)[0]
    alone = law_cls.fit_batch(p[keep], y[keep], np.ones((1, int(keep.sum()))), options=options)[0]
    probe = np.random.default_rng(6).dirichlet(np.ones(K), 40)
    for i in range(y.shape[1]):
        # rows of weight 0 change only the order of floating-point sums
        np.testing.assert_allclose(batched[i].predict(probe), alone[i].predict(probe), rtol=1e-7, atol=1e-9)


def test_exponential_reports_a_target_that_did_not_converge():
    p, y = _data()
    law_cls = MIXTURE_LAWS["exponential"]
    assert all(m.converged_ for m in law_cls.fit_batch(p, y, np.ones((1, len(p))))[0])
    capped = law_cls.fit_batch(p, y, np.ones((1, len(p))), options={"iterations": 1})[0]
    assert not any(m.converged_ for m in capped)


def test_exponential_robust_scale_is_a_median_absolute_deviation():
    # Residuals with one huge outlier: the MAD (and so the Huber cut) ignores it; a mean would not.
    from engine.laws.exponential import MAD_TO_SIGMA, _weighted_median

    r = torch.tensor([[-1.0, 0.5, 2.0, -0.5, 1.0, 1000.0]], dtype=torch.float64)
    w = torch.ones_like(r)
    centre = _weighted_median(r, w)
    mad = _weighted_median((r - centre[:, None]).abs(), w)
    assert float(centre) == 0.5 and float(mad) == 1.0
    assert MAD_TO_SIGMA == pytest.approx(1 / 0.6744897501960817, rel=1e-4)
    # counts act as repeated rows
    np.testing.assert_equal(float(_weighted_median(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, 1.0, 5.0]]))), 3.0)


def _hyper(g: int, d: int, seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return {"log_ls": torch.tensor(rng.normal(0.3, 0.4, (g, d))), "log_sf": torch.tensor(rng.normal(0, 0.3, g)),
            "log_sb": torch.tensor(rng.normal(-0.5, 0.3, g)), "log_sn": torch.tensor(rng.normal(-2, 0.3, g))}


@pytest.mark.parametrize("shared", [False, True])
def test_gp_hand_written_gradients_match_autograd(shared):
    rng = np.random.default_rng(1)
    n, d, t = 30, 5, 3
    f = torch.tensor(rng.normal(size=(n, d)))
    h = torch.tensor(rng.normal(size=(n, 2 * d)))
    y = torch.tensor(rng.normal(size=(t, n)))
    counts = torch.tensor(rng.integers(0, 3, size=(t, n)).astype(float))
    counts[:] = counts[:1] if shared else counts
    yy, cc = gp_module._groups(y, counts, shared)
    hyp = _hyper(yy.shape[0], d, 2)
    gram_h = (h @ h.T)[None] / h.shape[1]
    centre = float(np.log(np.sqrt(d)))
    by_hand = gp_module._nll_gradients(f, h, gram_h, yy, cc, hyp, centre)

    leaves = {k: v.clone().requires_grad_(True) for k, v in hyp.items()}
    kernel = gp_module._kernel(f, f, h, h, leaves) + torch.diag_embed(gp_module._noise(leaves, cc))
    chol = torch.linalg.cholesky(kernel)
    alpha = torch.cholesky_solve(yy, chol)
    m = yy.shape[2]
    nll = 0.5 * (yy * alpha).sum() + m * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum()
    nll = nll + 0.5 * ((leaves["log_ls"] - centre) ** 2).sum() / gp_module.LS_PRIOR_SD**2
    nll.backward()
    for key in hyp:
        np.testing.assert_allclose(by_hand[key].numpy(), leaves[key].grad.numpy(), rtol=1e-8, atol=1e-10)


def test_gp_posterior_mean_matches_scikit_learn_at_fixed_hyperparameters():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct

    p, y = _data(n=40, targets=1)
    law = MIXTURE_LAWS["gp"](iterations=10).fit(p, y[:, 0])
    hyp = {k: np.asarray(v, float) for k, v in law.hyper_.items()}
    f, h = law.train_features_, law.train_design_
    # One input matrix for both kernel terms: the RBF sees the log-share features (the design
    # columns get a length-scale so long they do not count), the dot product the design (the
    # feature columns are scaled by 1e-9 so their share of it is ~1e-18).
    tiny = 1e-9
    x_train = np.hstack([f * tiny, h])
    length = np.concatenate([np.exp(hyp["log_ls"]) * tiny, np.full(h.shape[1], 1e12)])
    kernel = (ConstantKernel(np.exp(2 * hyp["log_sf"]), "fixed") * RBF(length, "fixed")
              + ConstantKernel(np.exp(2 * hyp["log_sb"]) / h.shape[1], "fixed") * DotProduct(0.0, "fixed")
              + ConstantKernel(1.0, "fixed"))
    noise = (np.exp(hyp["log_sn"]) + gp_module.NOISE_FLOOR) ** 2
    standard = (y[:, 0] - law.y_mean_) / law.y_std_
    reference = GaussianProcessRegressor(kernel, alpha=noise, optimizer=None, normalize_y=False).fit(x_train, standard)
    probe = np.random.default_rng(7).dirichlet(np.ones(K), 25)
    x_probe = np.hstack([law.basis_.features(probe) * tiny, law.basis_.design(probe)])
    expected = reference.predict(x_probe) * law.y_std_ + law.y_mean_
    np.testing.assert_allclose(law.predict(probe), expected, rtol=1e-9, atol=1e-9)


def test_gp_shares_one_kernel_across_many_targets_only_where_cv_says_it_costs_nothing():
    from engine.laws.cv import fold_ids
    from engine.plan.synthetic import synthetic_swarm

    law_cls = MIXTURE_LAWS["gp"]
    swarm = synthetic_swarm(80, 5, gp_module.SHARED_FROM_TARGETS + 4, seed=1)
    ids = fold_ids(80, 5, 0)
    options = {"iterations": 15, "seed": 0}
    # targets of one family on a smooth swarm: the shared kernel predicts as well -> shared
    assert law_cls.choose_options(swarm.mixtures, swarm.values, ids, options)["shared_kernel"] == "always"
    # half the targets nearly noiseless, half as noisy as they vary: one noise level cannot fit both
    # kinds, the pilot sees the shared kernel lose -> one kernel a target
    clean = synthetic_swarm(80, 5, gp_module.SHARED_FROM_TARGETS + 4, seed=1, noise=0.0005).values
    clean[:, ::2] += np.random.default_rng(0).normal(size=clean[:, ::2].shape) * clean[:, ::2].std(0)
    assert law_cls.choose_options(swarm.mixtures, clean, ids, options)["shared_kernel"] == "never"
    few = swarm.values[:, : gp_module.SHARED_FROM_TARGETS]
    assert law_cls.choose_options(swarm.mixtures, few, ids, options)["shared_kernel"] == "never"
    assert law_cls.choose_options(swarm.mixtures, swarm.values, ids, {**options, "shared_kernel": "never"})[
        "shared_kernel"] == "never"


def test_fit_row_names_the_targets_the_exponential_law_did_not_converge_on(monkeypatch):
    from engine.cli.fit import _report_table
    from engine.laws.exponential import ExponentialLaw
    from engine.laws.objective import parse_objective
    from engine.services.fits import FitReport, LawRow, fit_law
    from engine.store.dataset import Dataset

    p, y = _data()
    names = ["web", "code"]
    dataset = Dataset("c", [f"r{i}" for i in range(len(p))], [f"d{j}" for j in range(K)], names, ["lower"] * 2, p, y,
                      np.full(len(p), 1e9), np.full(len(p), np.nan), np.full(K, np.nan))
    spec = parse_objective("mean", names, dataset.directions)
    assert "not_converged" not in fit_law(dataset, spec, "exponential", bootstrap=4)["cv_metrics"]
    monkeypatch.setattr(ExponentialLaw.__init__, "__defaults__", (1e-4, 1.5, 1))  # one LM step: cannot converge
    figures = fit_law(dataset, spec, "exponential", bootstrap=4)["cv_metrics"]
    assert figures["not_converged"] == names
    row = LawRow("exponential", True, figures["spearman"], figures["pearson"], figures["mae"], figures["rmse"],
                 figures["top1_rank"], figures["top1_gap"], 1.0, False, coverage=figures["coverage90"],
                 not_converged=tuple(figures["not_converged"]))
    table = _report_table(FitReport("c", "mean", "h" * 12, len(p), [row], "exponential"))
    assert "did not converge on: web, code" in table
