"""Gaussian-process mixing law on log-shares, with a linear mean.

Loss falls steeply as a domain's share leaves zero and flattens after, so the
inputs are ``f_j = log(p_j + eps)`` (standardised); the kernel is

    k(p, q) = sf^2 * exp(-0.5 * sum_j (f_j(p) - f_j(q))^2 / l_j^2)     (ARD RBF)
            + sb^2 / q * h(p).h(q) + 1                                    (linear mean, integrated out)
            + sn^2 * [p == q]                                             (noise)

with ``h = [p, f]`` standardised: a Bayesian linear model on shares and
log-shares with a GP on top (Rasmussen & Williams 2006, Sec. 2.7). Hyper-
parameters maximise the log marginal likelihood (their Eq. 5.8) with a weak
log-normal prior on the length-scales so few runs stay well posed; gradients by
the identity dNLL/dK = (K^-1 - a a^T) / 2 (their Eq. 5.9), so autograd only
differentiates the kernel, not the Cholesky factor. To stay fast the likelihood
is evaluated on a seeded subsample of at most ``max_hyper_runs`` runs; the
posterior then uses all of them. Bootstrap refits keep the hyperparameters of
the fit on all runs and resolve the posterior weights (counts enter as
per-run noise ``sn^2 / count``).

Smooth and finite everywhere on the simplex (``eps > 0``); far from the runs it
reverts to the linear mean, which extrapolates.
"""

from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import torch

from engine.errors import FitError
from engine.laws.base import LawBase, as_mixtures, check_batch_input, one_torch_thread

DTYPE = torch.float64
NOISE_FLOOR = 1e-3  # in standard deviations of the target
EXCLUDED_NOISE = 1e6  # a run outside a resample: its weight in the posterior is ~1e-12
SHARED_FROM_TARGETS = 16  # up to this many targets, each gets its own kernel without asking
PILOT_TARGETS = 8
SHARED_SPEARMAN_LOSS = 0.002  # the tie margin of law selection
SHARED_MAE_RATIO = 1.02
LS_PRIOR_SD = 1.5  # log-normal prior on each length-scale, centred at log(sqrt(d))


class GPLaw(LawBase):
    name: ClassVar[str] = "gp"
    smooth: ClassVar[bool] = True

    # 40 Adam steps on 192 runs: on the RegMix runs as good in 5-fold CV as 60 steps on 256
    # (Pile-CC Spearman 0.9901 vs 0.9902, mean 0.9875 vs 0.9876) at half the time.
    def __init__(self, eps: float = 0.01, iterations: int = 40, learning_rate: float = 0.1,
                 max_hyper_runs: int = 192, seed: int = 0, shared_kernel: str = "auto") -> None:
        self.eps = eps
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.max_hyper_runs = max_hyper_runs
        self.seed = seed
        # "auto": one set of hyperparameters for all targets where CV says it costs nothing
        # (:meth:`choose_options`; fit_batch alone treats it as "never"); "always" / "never" force it.
        self.shared_kernel = shared_kernel

    def _options(self) -> dict[str, Any]:
        return {"eps": self.eps, "iterations": self.iterations, "learning_rate": self.learning_rate,
                "max_hyper_runs": self.max_hyper_runs, "seed": self.seed, "shared_kernel": self.shared_kernel}

    def fit(self, mixtures, y, *, tokens=None, model_params=None) -> "GPLaw":
        y = np.asarray(y, dtype=float)
        law = self.fit_batch(np.asarray(mixtures, dtype=float), y[:, None], np.ones((1, len(y))),
                             options=self._options())[0][0]
        self.__dict__.update({k: v for k, v in law.__dict__.items() if k.endswith("_")})
        return self

    # -- fitting -------------------------------------------------------------------------------

    @classmethod
    def fit_batch(cls, mixtures, targets, weights, *, options=None, hyper: list[list["GPLaw"]] | None = None):
        """Fit every (weight row, target); with ``hyper`` ([r][i] or [0][i] laws) reuse their hyperparameters."""
        options = {**cls()._options(), **(options or {})}
        mixtures, targets, weights, observed = check_batch_input(cls.name, mixtures, targets, weights)
        n_rep, n_tgt = len(weights), targets.shape[1]
        reuse_kernel = hyper is not None and len(hyper) == 1  # refits on all runs with one set of hyperparameters
        if hyper is not None:
            shared = bool(hyper[0][0].shared_kernel_)
        else:
            wanted = options["shared_kernel"] == "always"
            # one kernel needs one noise per run: every target measured on the same runs
            shared = wanted and n_tgt > 1 and bool((observed == observed[:, :1]).all())

        def fit_row(r: int, kernel: torch.Tensor | None) -> tuple[list[GPLaw], torch.Tensor]:
            rows = np.flatnonzero(weights[r] > 0) if hyper is None else np.arange(len(mixtures))
            w = weights[r, rows]
            basis = _Basis.from_training(mixtures[rows], options["eps"])
            feats, design = basis.features(mixtures[rows]), basis.design(mixtures[rows])
            y_raw = targets[rows]
            obs = observed[rows] & (w > 0)[:, None]
            y_mean = np.array([y_raw[obs[:, i], i].mean() for i in range(n_tgt)])
            y_std = np.array([max(y_raw[obs[:, i], i].std(), 1e-12) for i in range(n_tgt)])
            y_std_t = np.where(obs, (np.where(obs, y_raw, 0.0) - y_mean) / y_std, 0.0).T  # (t, n)
            counts = np.where(obs.T, w[None, :], 0.0)  # (t, n)
            if hyper is None:
                hyp = _optimise(feats, design, y_std_t, counts, options, shared)
            else:
                source = (hyper[r] if len(hyper) > 1 else hyper[0])[: 1 if shared else n_tgt]
                hyp = {key: np.stack([law.hyper_[key] for law in source]) for key in ("log_ls", "log_sf", "log_sb", "log_sn")}
            alpha, kernel = _posterior_weights(feats, design, y_std_t, counts, hyp, kernel, shared)
            row = []
            for i in range(n_tgt):
                law = cls(**options)
                law.basis_ = basis
                law.train_features_ = feats
                law.train_design_ = design
                law.hyper_ = {key: np.asarray(value[0 if shared else i], dtype=float) for key, value in hyp.items()}
                law.shared_kernel_ = shared
                law.alpha_ = alpha[i]
                law.y_mean_, law.y_std_ = float(y_mean[i]), float(y_std[i])
                if not (np.isfinite(law.alpha_).all() and all(np.isfinite(v).all() for v in law.hyper_.values())):
                    raise FitError("gp: the fit produced non-finite parameters.")
                row.append(law)
            return row, kernel

        # Rows are independent single-threaded torch solves (torch releases the GIL), so a thread
        # per core runs them side by side; each row's result does not depend on the pool.
        with one_torch_thread():
            done: list[list[GPLaw]] = []
            kernel = None
            if reuse_kernel:  # the first refit computes the noise-free kernel that the others reuse
                row, kernel = fit_row(0, None)
                done.append(row)
            workers = max(1, min(n_rep - len(done), os.cpu_count() or 1))
            with ThreadPoolExecutor(workers) as pool:
                done += pool.map(lambda r: fit_row(r, kernel)[0], range(len(done), n_rep))
        return done

    @classmethod
    def choose_options(cls, mixtures, targets, ids, options):
        """``shared_kernel="auto"``: share one kernel across targets only where CV says it costs nothing.

        With more than SHARED_FROM_TARGETS targets, the shared fit's held-out predictions are compared,
        on up to PILOT_TARGETS targets (seeded draw), with per-target fits on the same folds: shared is
        kept if its mean Spearman is within SHARED_SPEARMAN_LOSS and its mean MAE within
        SHARED_MAE_RATIO. On the 512 RegMix runs sharing costs 0.035 Spearman on the mean of 13 losses
        (0.9875 -> 0.9518), so a few targets always get their own kernels.
        """
        return cls._pilot(mixtures, targets, ids, options)[0]

    @classmethod
    def cross_validate(cls, mixtures, targets, ids, options):
        """As :meth:`LawBase.cross_validate`, reusing the pilot's held-out predictions of the shared kernel
        when it is chosen (the same fits on the same folds: computing them twice doubled the CV time)."""
        from engine.laws.cv import cross_validated_predictions

        options, shared = cls._pilot(mixtures, targets, ids, options)
        if shared is not None and options["shared_kernel"] == "always":
            return options, shared
        return options, cross_validated_predictions(cls, options, mixtures, targets, ids)[0]

    @classmethod
    def _pilot(cls, mixtures, targets, ids, options) -> tuple[dict[str, Any], np.ndarray | None]:
        """The options :meth:`choose_options` resolves, and the shared kernel's held-out predictions if computed."""
        from engine.laws.cv import cross_validated_predictions, metrics

        options = {**cls()._options(), **options}
        if options["shared_kernel"] != "auto":
            return options, None
        n_tgt = targets.shape[1]
        if n_tgt <= SHARED_FROM_TARGETS:
            return {**options, "shared_kernel": "never"}, None
        pilot = np.sort(np.random.default_rng(options["seed"]).permutation(n_tgt)[:PILOT_TARGETS])
        shared, _ = cross_validated_predictions(cls, {**options, "shared_kernel": "always"}, mixtures, targets, ids)
        alone, _ = cross_validated_predictions(cls, {**options, "shared_kernel": "never"}, mixtures, targets[:, pilot], ids)
        a = [metrics(targets[:, i], shared[:, i]) for i in pilot]
        b = [metrics(targets[:, i], alone[:, j]) for j, i in enumerate(pilot)]
        close = (np.mean([m.spearman for m in a]) >= np.mean([m.spearman for m in b]) - SHARED_SPEARMAN_LOSS
                 and np.mean([m.mae for m in a]) <= SHARED_MAE_RATIO * np.mean([m.mae for m in b]))
        return {**options, "shared_kernel": "always" if close else "never"}, shared

    @classmethod
    def fit_refits(cls, mixtures, targets, counts, full, *, options=None):
        """Refits keep the hyperparameters of the fit on all runs (type-II ML estimate) and resolve the weights."""
        return cls.fit_batch(mixtures, targets, counts, options=options, hyper=[full])

    # -- prediction ----------------------------------------------------------------------------

    def predict(self, mixtures, *, tokens=None, model_params=None) -> np.ndarray:
        self.check_fitted()
        p = torch.as_tensor(as_mixtures(mixtures, self.basis_.k), dtype=DTYPE)
        with torch.no_grad(), one_torch_thread():
            return self.predict_torch(p).numpy()

    @classmethod
    def predict_targets(cls, laws: list["GPLaw"], mixtures: np.ndarray) -> np.ndarray:
        """(m, t) from one cross-kernel when the laws share their runs and hyperparameters (a shared-kernel
        fit: 110 targets of a fold made 110 equal kernels), else one prediction a law."""
        first = laws[0]
        shared = all(law.basis_ is first.basis_ and law.train_features_ is first.train_features_
                     and all(np.array_equal(law.hyper_[k], first.hyper_[k]) for k in first.hyper_) for law in laws[1:])
        if not shared:
            return super().predict_targets(laws, mixtures)
        first.check_fitted()
        p = torch.as_tensor(as_mixtures(mixtures, first.basis_.k), dtype=DTYPE)
        alphas = torch.as_tensor(np.stack([law.alpha_ for law in laws], axis=1), dtype=DTYPE)
        scale = np.array([[law.y_std_, law.y_mean_] for law in laws])
        with torch.no_grad(), one_torch_thread():
            weighed = (first._cross(p) @ alphas).numpy()
        return weighed * scale[:, 0] + scale[:, 1]

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        return (self._cross(mixtures) @ torch.as_tensor(self.alpha_, dtype=mixtures.dtype)) * self.y_std_ + self.y_mean_

    def _cross(self, mixtures: torch.Tensor) -> torch.Tensor:
        """(m, n) kernel of ``mixtures`` to the training runs, without noise: the fit's own :func:`_kernel`."""
        dtype = mixtures.dtype
        hyp = {key: torch.as_tensor(np.atleast_1d(value), dtype=dtype)[None] if key == "log_ls"
               else torch.as_tensor(np.atleast_1d(value)[:1], dtype=dtype) for key, value in self.hyper_.items()}
        return _kernel(self.basis_.features_torch(mixtures), torch.as_tensor(self.train_features_, dtype=dtype),
                       self.basis_.design_torch(mixtures), torch.as_tensor(self.train_design_, dtype=dtype), hyp)[0]

    @classmethod
    def targets_torch(cls, laws: list["GPLaw"], replicas: list[Any]) -> "GPTargets | None":
        """One predictor for all targets of an objective (see :class:`GPTargets`), None if they do not share runs."""
        return GPTargets.build(laws, replicas)

    # -- storage -------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        return {**self._options(), "basis": self.basis_.params,
                "train_features": self.train_features_.tolist(), "train_design": self.train_design_.tolist(),
                "hyper": {k: np.atleast_1d(v).tolist() for k, v in self.hyper_.items()},
                "alpha": self.alpha_.tolist(), "y_mean": self.y_mean_, "y_std": self.y_std_,
                "shared_kernel_fit": self.shared_kernel_}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "GPLaw":
        law = cls(**{k: params[k] for k in cls()._options() if k in params})
        law.basis_ = _Basis.from_params(params["basis"])
        law.train_features_ = np.asarray(params["train_features"], dtype=float)
        law.train_design_ = np.asarray(params["train_design"], dtype=float)
        law.hyper_ = {k: np.asarray(v, dtype=float) if k == "log_ls" else np.asarray(v[0], dtype=float)
                      for k, v in params["hyper"].items()}
        law.alpha_ = np.asarray(params["alpha"], dtype=float)
        law.y_mean_, law.y_std_ = float(params["y_mean"]), float(params["y_std"])
        law.shared_kernel_ = bool(params.get("shared_kernel_fit", False))
        return law

    @classmethod
    def pack_targets(cls, laws: list["GPLaw"]) -> Any:
        """The targets of one fit share their runs and basis: store those once (a swarm of 110 targets
        would otherwise repeat the (n, 3k) training inputs 110 times)."""
        first = laws[0]
        if not all(law.basis_ is first.basis_ and law.train_features_ is first.train_features_ for law in laws):
            return super().pack_targets(laws)
        inputs = ("basis", "train_features", "train_design")
        return {"inputs": {k: v for k, v in first.params.items() if k in inputs},
                "targets": [{k: v for k, v in law.params.items() if k not in inputs} for law in laws]}

    @classmethod
    def unpack_targets(cls, packed: Any) -> list["GPLaw"]:
        if isinstance(packed, list):
            return super().unpack_targets(packed)
        first = cls.from_params({**packed["inputs"], **packed["targets"][0]})
        laws = [first]
        for params in packed["targets"][1:]:
            law = cls.from_params({**params, "basis": packed["inputs"]["basis"], "train_features": [],
                                   "train_design": []})
            law.basis_, law.train_features_, law.train_design_ = first.basis_, first.train_features_, first.train_design_
            laws.append(law)
        return laws

    @classmethod
    def pack_replicas(cls, laws: list["GPLaw"]) -> dict[str, Any]:
        """Refits keep the runs and hyperparameters of the fit on all runs (stored with it): store
        each refit's weights only (float32) and its target scaling."""
        alphas = np.stack([law.alpha_ for law in laws]).astype(np.float32)
        return {"y": [[law.y_mean_, law.y_std_] for law in laws],
                "alphas_f32": base64.b64encode(alphas.tobytes()).decode("ascii"), "shape": list(alphas.shape)}

    @classmethod
    def unpack_replicas(cls, packed: dict[str, Any], full: "GPLaw | None" = None) -> "GPReplicas":
        alphas = np.frombuffer(base64.b64decode(packed["alphas_f32"]), dtype=np.float32).reshape(packed["shape"])
        if "shared" in packed:  # stored before the refits' inputs were shared with the full fit
            full = cls.from_params({**packed["shared"], "alpha": alphas[0].astype(float).tolist()})
        if full is None:
            raise FitError("gp: the bootstrap refits need the fit on all runs they were drawn around.")
        return GPReplicas(full, alphas.astype(float), np.asarray(packed["y"], dtype=float))


class GPReplicas:
    """B refits of one GP target: one cross-kernel, B weight vectors."""

    def __init__(self, base: GPLaw, alphas: np.ndarray, y_scale: np.ndarray) -> None:
        self.base, self.alphas, self.y_scale = base, alphas, y_scale

    def predict(self, mixtures: np.ndarray) -> np.ndarray:
        return self._replicas(self._cross(mixtures))

    def predict_with_point(self, mixtures: np.ndarray, law: GPLaw) -> tuple[np.ndarray, np.ndarray]:
        """(m,) prediction of ``law`` (the fit on all runs) and (B, m) of the refits, from one cross-kernel
        when the refits kept ``law``'s hyperparameters and runs (they do: see :meth:`GPLaw.fit_refits`)."""
        cross = self._cross(mixtures)
        same = (law.train_features_.shape == self.base.train_features_.shape
                and all(np.array_equal(law.hyper_[k], self.base.hyper_[k]) for k in law.hyper_))
        if not same:
            return law.predict(mixtures), self._replicas(cross)
        with torch.no_grad(), one_torch_thread():
            point = (cross @ torch.as_tensor(law.alpha_, dtype=DTYPE)).numpy()
        return point * law.y_std_ + law.y_mean_, self._replicas(cross)

    def _cross(self, mixtures: np.ndarray) -> torch.Tensor:
        p = torch.as_tensor(as_mixtures(mixtures, self.base.basis_.k), dtype=DTYPE)
        with torch.no_grad(), one_torch_thread():
            return self.base._cross(p)

    def _replicas(self, cross: torch.Tensor) -> np.ndarray:
        with torch.no_grad(), one_torch_thread():
            weighed = (cross @ torch.as_tensor(self.alphas.T, dtype=DTYPE)).numpy()  # (m, B)
        return weighed.T * self.y_scale[:, 1:2] + self.y_scale[:, :1]

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        """(B, m), differentiable in ``mixtures`` (the planner's gradient steps)."""
        alphas = torch.as_tensor(self.alphas.T, dtype=mixtures.dtype)
        scale = torch.as_tensor(self.y_scale, dtype=mixtures.dtype)
        return (self.base._cross(mixtures) @ alphas).T * scale[:, 1:2] + scale[:, :1]


class _Basis:
    """Log-share features and the linear-mean design, standardised on the training runs."""

    def __init__(self, eps: float, f_mean, f_std, h_mean, h_std) -> None:
        self.eps = eps
        self.f_mean, self.f_std = np.asarray(f_mean, float), np.asarray(f_std, float)
        self.h_mean, self.h_std = np.asarray(h_mean, float), np.asarray(h_std, float)
        self.k = len(self.f_mean)

    @classmethod
    def from_training(cls, mixtures: np.ndarray, eps: float) -> "_Basis":
        logs = np.log(mixtures + eps)
        raw = np.hstack([mixtures, logs])
        return cls(eps, logs.mean(0), logs.std(0) + 1e-9, raw.mean(0), raw.std(0) + 1e-9)

    def features(self, mixtures: np.ndarray) -> np.ndarray:
        return (np.log(mixtures + self.eps) - self.f_mean) / self.f_std

    def design(self, mixtures: np.ndarray) -> np.ndarray:
        return (np.hstack([mixtures, np.log(mixtures + self.eps)]) - self.h_mean) / self.h_std

    def features_torch(self, p: torch.Tensor) -> torch.Tensor:
        return (torch.log(p.clamp_min(0) + self.eps) - torch.as_tensor(self.f_mean, dtype=p.dtype)) / torch.as_tensor(self.f_std, dtype=p.dtype)

    def design_torch(self, p: torch.Tensor) -> torch.Tensor:
        raw = torch.cat([p, torch.log(p.clamp_min(0) + self.eps)], dim=-1)
        return (raw - torch.as_tensor(self.h_mean, dtype=p.dtype)) / torch.as_tensor(self.h_std, dtype=p.dtype)

    @property
    def params(self) -> dict[str, Any]:
        return {"eps": self.eps, "f_mean": self.f_mean.tolist(), "f_std": self.f_std.tolist(),
                "h_mean": self.h_mean.tolist(), "h_std": self.h_std.tolist()}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "_Basis":
        return cls(params["eps"], params["f_mean"], params["f_std"], params["h_mean"], params["h_std"])


def _rbf(fa: torch.Tensor, fb: torch.Tensor, hyp: dict[str, torch.Tensor]) -> torch.Tensor:
    """(t, a, b) RBF term ``sf^2 exp(-|fa - fb|^2 / 2)`` on length-scaled features, hyperparameters batched over t.

    Written as exp(2 log sf - |a|^2 / 2 - |b|^2 / 2 + a.b): one fused product-and-add and one exp over the
    (t, m, n) block instead of seven passes (the planner scores thousands of candidates)."""
    ls = hyp["log_ls"].exp()  # (t, d)
    a = fa[None] / ls[:, None, :]
    b = fb[None] / ls[:, None, :]
    top = (2 * hyp["log_sf"])[:, None, None]
    exponent = torch.baddbmm(top - 0.5 * (a**2).sum(-1)[:, :, None] - 0.5 * (b**2).sum(-1)[:, None, :], a, b.transpose(1, 2))
    return torch.exp(torch.minimum(exponent, top))  # the distance is never negative: rounding must not lift it


def _kernel(fa: torch.Tensor, fb: torch.Tensor, ha: torch.Tensor, hb: torch.Tensor, hyp: dict[str, torch.Tensor]) -> torch.Tensor:
    """(t, a, b) kernel without noise for hyperparameters batched over targets t: RBF + linear mean + 1.
    The one kernel of the law: its fit, its predictions (one target or many) and the planner's all use it."""
    scale = ((2 * hyp["log_sb"]).exp() / ha.shape[1]).sqrt()[:, None, None]  # the linear-mean kernel, fused
    return torch.baddbmm(_rbf(fa, fb, hyp) + 1.0, ha[None] * scale, (hb[None] * scale).transpose(1, 2))


def _noise(hyp: dict[str, torch.Tensor], counts: torch.Tensor) -> torch.Tensor:
    """(t, n) per-run noise variance: sn^2 / count, huge where a run is left out."""
    sn2 = (hyp["log_sn"].exp() + NOISE_FLOOR)[:, None] ** 2
    return torch.where(counts > 0, sn2 / counts.clamp_min(1e-12), torch.full_like(counts, EXCLUDED_NOISE))


def _optimise(feats, design, y, counts, options, shared: bool = False) -> dict[str, np.ndarray]:
    """Type-II maximum likelihood of the hyperparameters of every target at once (Adam).

    ``shared``: one set of hyperparameters for all targets (their summed likelihood), so each step
    is one Cholesky factor with every target a right-hand side instead of one factor a target.
    Returns arrays with a leading axis of 1 (shared) or t.
    """
    n, d = feats.shape
    rng = np.random.default_rng(options["seed"])
    subset = np.sort(rng.permutation(n)[: int(options["max_hyper_runs"])])
    f = torch.as_tensor(feats[subset], dtype=DTYPE)
    h = torch.as_tensor(design[subset], dtype=DTYPE)
    yy, cc = _groups(torch.as_tensor(y[:, subset], dtype=DTYPE), torch.as_tensor(counts[:, subset], dtype=DTYPE), shared)
    g = yy.shape[0]  # hyperparameter sets
    prior_centre = float(np.log(np.sqrt(d)))
    hyp = {"log_ls": torch.full((g, d), prior_centre, dtype=DTYPE), "log_sf": torch.zeros(g, dtype=DTYPE),
           "log_sb": torch.zeros(g, dtype=DTYPE), "log_sn": torch.full((g,), float(np.log(0.1)), dtype=DTYPE)}
    optimiser = torch.optim.Adam(list(hyp.values()), lr=float(options["learning_rate"]))
    gram_h = (h @ h.T)[None] / h.shape[1]
    for _ in range(int(options["iterations"])):
        grads = _nll_gradients(f, h, gram_h, yy, cc, hyp, prior_centre)
        for key, value in grads.items():
            hyp[key].grad = value
        optimiser.step()
        with torch.no_grad():
            hyp["log_ls"].clamp_(-3.0, 6.0)
            hyp["log_sn"].clamp_(-9.0, 2.0)
            hyp["log_sf"].clamp_(-6.0, 3.0)
            hyp["log_sb"].clamp_(-6.0, 3.0)
    return {k: v.numpy() for k, v in hyp.items()}


def _nll_gradients(f: torch.Tensor, h: torch.Tensor, gram_h: torch.Tensor, yy: torch.Tensor, cc: torch.Tensor,
                   hyp: dict[str, torch.Tensor], prior_centre: float) -> dict[str, torch.Tensor]:
    """Gradients of the negative log marginal likelihood plus the length-scale prior, by hand.

    yy (g, s, m): m standardised targets per hyperparameter set; cc (g, s): run counts.
    dNLL/dtheta = sum(dNLL/dK * dK/dtheta) (R&W Eq. 5.9), written out per hyperparameter instead of
    autograd through the kernel (checked against autograd in the tests).
    """
    with torch.no_grad():
        rbf, linear = _kernel_parts(f, h, gram_h, hyp)
        kernel = rbf + linear + 1.0 + torch.diag_embed(_noise(hyp, cc))
        chol, info = torch.linalg.cholesky_ex(kernel)
        if bool((info != 0).any()):
            chol, _ = torch.linalg.cholesky_ex(kernel + 1e-6 * torch.eye(len(f), dtype=f.dtype))
        alpha = torch.cholesky_solve(yy, chol)  # (g, s, m)
        # The m targets of a set share K: their likelihoods add, dNLL/dK = (m K^-1 - A A^T) / 2.
        grad_k = 0.5 * (yy.shape[2] * torch.cholesky_inverse(chol) - alpha @ alpha.transpose(1, 2))
        weighted = grad_k * rbf  # (g, s, s), symmetric
        ls2 = (2 * hyp["log_ls"]).exp()
        # sum_ab W_ab (f_aj - f_bj)^2 = 2 (rowsum(W) . f_j^2 - f_j^T W f_j)
        spread = 2 * (weighted.sum(2) @ f**2 - ((weighted @ f) * f[None]).sum(1))  # (g, d)
        sn = hyp["log_sn"].exp()
        dnoise = torch.where(cc > 0, 2 * (sn + NOISE_FLOOR)[:, None] * sn[:, None] / cc.clamp_min(1e-12),
                             torch.zeros_like(cc))
        return {"log_ls": spread / ls2 + (hyp["log_ls"] - prior_centre) / LS_PRIOR_SD**2,
                "log_sf": 2 * weighted.sum((1, 2)),
                "log_sb": 2 * (grad_k * linear).sum((1, 2)),
                "log_sn": (grad_k.diagonal(dim1=1, dim2=2) * dnoise).sum(1)}


def _kernel_parts(f: torch.Tensor, h: torch.Tensor, gram_h: torch.Tensor,
                  hyp: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The RBF and linear-mean terms of :func:`_kernel` on one set of runs (t, n, n), apart: the likelihood's
    gradients need each."""
    return _rbf(f, f, hyp), (2 * hyp["log_sb"]).exp()[:, None, None] * gram_h


def _groups(y: torch.Tensor, counts: torch.Tensor, shared: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (t, n) as right-hand sides (g, n, m) of g kernels and their counts (g, n):
    one kernel for all targets when ``shared`` (their counts are equal then), else one a target."""
    if shared:
        return y.T[None], counts[:1]
    return y[:, :, None], counts


def _posterior_weights(feats, design, y, counts, hyp, kernel: torch.Tensor | None = None,
                       shared: bool = False) -> tuple[np.ndarray, torch.Tensor]:
    """(t, n) K^-1 y for every target, and the noise-free kernel (reusable for refits on the same runs).

    Runs left out of every target's resample (count 0) get weight 0 and are dropped from the
    solve: their EXCLUDED_NOISE would make their weight ~1e-12 anyway, and a bootstrap resample
    leaves out ~37% of the runs, so the Cholesky factor is ~4x cheaper. ``shared``: ``hyp`` holds
    one set for all targets, and one factor solves them all.
    """
    f = torch.as_tensor(feats, dtype=DTYPE)
    h = torch.as_tensor(design, dtype=DTYPE)
    hyp_t = {k: torch.as_tensor(v, dtype=DTYPE) for k, v in hyp.items()}
    y_t, counts_t = _groups(torch.as_tensor(y, dtype=DTYPE), torch.as_tensor(counts, dtype=DTYPE), shared)
    with torch.no_grad():
        if kernel is None:
            kernel = _kernel(f, f, h, h, hyp_t)
        used = torch.nonzero((counts_t > 0).any(dim=0))[:, 0]
        sub = kernel[:, used][:, :, used]
        noisy = sub + torch.diag_embed(_noise(hyp_t, counts_t[:, used]))
        chol, info = torch.linalg.cholesky_ex(noisy)
        if bool((info != 0).any()):
            chol, info = torch.linalg.cholesky_ex(noisy + 1e-6 * torch.eye(len(used), dtype=DTYPE))
            if bool((info != 0).any()):
                raise FitError("gp: the kernel matrix is not positive definite even with jitter.")
        alpha = torch.zeros(y_t.shape, dtype=DTYPE)
        alpha[:, used] = torch.cholesky_solve(y_t[:, used], chol)
        alpha = alpha[0].T if shared else alpha[..., 0]
    return alpha.numpy(), kernel


class GPTargets:
    """All targets of one objective at once: they share the training runs and basis, so one batched
    cross-kernel (targets x rows x runs) serves every target's mean and every refit (the planner's
    gradient steps call this; per-target calls cost 2 x 13 small kernels per step on RegMix).
    Rows are taken in chunks of ~16 MB of kernel: big blocks are slower (memory-bound) and wide projects
    would need GBs."""

    MAX_ELEMENTS = 2_000_000

    def __init__(self, laws: list[GPLaw], replicas: list[GPReplicas]) -> None:
        first = laws[0]
        self.basis, self.train_f, self.train_h = first.basis_, first.train_features_, first.train_design_
        self.hyper = {key: np.stack([np.atleast_1d(law.hyper_[key]) for law in laws]) for key in first.hyper_}
        self.hyper = {key: v if key == "log_ls" else v[:, 0] for key, v in self.hyper.items()}
        self.alpha = np.stack([law.alpha_ for law in laws])  # (t, n)
        self.y = np.array([[law.y_mean_, law.y_std_] for law in laws])  # (t, 2)
        self.alphas = np.stack([rep.alphas for rep in replicas])  # (t, B, n)
        self.y_reps = np.stack([rep.y_scale for rep in replicas])  # (t, B, 2)

    @classmethod
    def build(cls, laws: list[Any], replicas: list[Any]) -> "GPTargets | None":
        """None unless every law is a GP with GP refits fitted on the same runs."""
        if not (laws and all(isinstance(law, GPLaw) for law in laws)
                and all(isinstance(rep, GPReplicas) for rep in replicas) and len(replicas) == len(laws)):
            return None
        first = laws[0]
        same = all(law.train_features_.shape == first.train_features_.shape
                   and np.array_equal(law.train_features_, first.train_features_)
                   and law.basis_.params == first.basis_.params for law in laws)
        return cls(laws, replicas) if same else None

    def predict(self, mixtures: np.ndarray, replicas: bool = True, weights: np.ndarray | None = None,
                scale: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
        """(m, t) means and, with ``replicas``, the refits without gradients (many candidates at once).

        Without ``weights``: (B, m, t) refits of every target. With ``weights`` (t,): (B, m) refits of the
        objective ``targets @ weights``, never forming the (B, m, t) array (110 targets x 100 refits x
        10,000 candidates would be 880 MB); with a shared kernel the targets' refit weights are summed
        first, so the product is B columns wide instead of t x B. ``scale`` widens each refit's deviation
        from the mean (the calibrated interval). Chunks of rows run on a thread per core (torch releases
        the GIL).
        """
        p = np.asarray(mixtures, dtype=float)
        t, n = self.alpha.shape
        objective = weights is not None and self.shared
        wide = t if replicas and not objective else (1 if self.shared else t)
        chunk = max(1, self.MAX_ELEMENTS // max(1, wide * n))
        starts = list(range(0, len(p), chunk))
        if objective:
            self._objective_columns(weights, scale)  # once, before the threads share it
        with torch.no_grad(), one_torch_thread(), ThreadPoolExecutor(max(1, min(len(starts), os.cpu_count() or 1))) as pool:
            parts = list(pool.map(lambda i: self._predict_numpy(p[i:i + chunk], replicas, weights, scale), starts))
        mean = np.concatenate([part[0] for part in parts]) if parts else np.zeros((0, t))
        if not replicas:
            return mean, None
        reps = np.concatenate([part[1] for part in parts], axis=1) if parts else None
        return mean, reps

    @property
    def shared(self) -> bool:
        """Every target has the same hyperparameters (a shared kernel): one cross-kernel serves all."""
        return all(bool((v == v[:1]).all()) for v in self.hyper.values())

    def _objective_columns(self, weights: np.ndarray, scale: float) -> dict[str, torch.Tensor]:
        """What one shared cross-kernel multiplies to give every target's mean and the objective's calibrated
        refits (cached per question). Everything is linear in the weight columns, so the objective's refit
        ``b`` is the kernel times ``sum_t w_t ((1 - scale) mean_t + scale refit_tb)``: (n, B) columns.

        targets (n, t) / targets_off (t,): each target's mean; mean (n,) / mean_off: the objective's;
        reps (n, B) / reps_off (B,): its refits, as ``point + scale (refit - point)``."""
        w = np.asarray(weights, dtype=float)
        key = (tuple(w), float(scale))
        cached = getattr(self, "_cached", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        y_mean, y_std = self.y[:, 0], self.y[:, 1]
        targets = self.alpha * y_std[:, None]  # (t, n)
        mean = w @ targets
        reps = (1 - scale) * mean[:, None] + scale * np.einsum("tb,tbn->nb", w[:, None] * self.y_reps[..., 1], self.alphas)
        reps_off = (1 - scale) * (w @ y_mean) + scale * (w @ self.y_reps[..., 0])
        cols = {"targets": targets.T, "targets_off": y_mean, "mean": mean, "mean_off": np.asarray(w @ y_mean),
                "reps": reps, "reps_off": reps_off}
        cols = {k: torch.as_tensor(np.ascontiguousarray(v), dtype=DTYPE) for k, v in cols.items()}
        self._cached = (key, cols)
        return cols

    def _predict_numpy(self, p: np.ndarray, replicas: bool, weights: np.ndarray | None,
                       scale: float) -> tuple[np.ndarray, np.ndarray | None]:
        pt = torch.as_tensor(p, dtype=DTYPE)
        if weights is not None and self.shared:
            mean, reps = self._objective_chunk(pt, replicas, weights, scale, per_target=True)
            return mean.numpy(), None if reps is None else reps.numpy()
        mean, reps = self._predict_chunk(pt, replicas, 1 if self.shared else len(self.alpha))
        if not replicas:
            return mean.numpy(), None
        if scale != 1.0:
            reps = mean[None] + scale * (reps - mean[None])
        if weights is not None:
            return mean.numpy(), (reps @ torch.as_tensor(weights, dtype=DTYPE)).numpy()  # (B, m)
        return mean.numpy(), reps.numpy()  # (B, m, t)

    def _objective_chunk(self, p: torch.Tensor, replicas: bool, weights: np.ndarray, scale: float,
                         per_target: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(m, t) every target's mean (``per_target``) or (m,) the objective's, and (B, m) the objective's
        calibrated refits, from one cross-kernel (shared hyperparameters only); differentiable in ``p``."""
        c = self._objective_columns(weights, scale)
        cross = self._cross(p, 1)[0]  # (m, n)
        mean = cross @ c["targets"] + c["targets_off"] if per_target else cross @ c["mean"] + c["mean_off"]
        return mean, ((cross @ c["reps"] + c["reps_off"]).T if replicas else None)

    def predict_objective_torch(self, mixtures: torch.Tensor, weights: np.ndarray,
                                scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(m,) the objective ``targets @ weights`` and (B, m) its calibrated refits, differentiable in
        ``mixtures`` (the planner's gradient steps): B product columns instead of t x B. Shared kernel only
        (:attr:`shared`); otherwise combine :meth:`predict_torch`'s targets."""
        chunk = max(1, self.MAX_ELEMENTS // max(1, len(self.alpha[0])))
        parts = [self._objective_chunk(mixtures[i:i + chunk], True, weights, scale, per_target=False)
                 for i in range(0, len(mixtures), chunk)]
        return torch.cat([part[0] for part in parts]), torch.cat([part[1] for part in parts], dim=1)

    def predict_torch(self, mixtures: torch.Tensor, replicas: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(m, t) means and (B, m, t) refits (None unless ``replicas``), differentiable in ``mixtures``.
        With a shared kernel one cross-kernel serves every target (it computed t identical ones)."""
        t, n = self.alpha.shape
        groups = 1 if self.shared else t
        chunk = max(1, self.MAX_ELEMENTS // max(1, (t if replicas else groups) * n))
        parts = [self._predict_chunk(mixtures[i:i + chunk], replicas, groups) for i in range(0, len(mixtures), chunk)]
        mean = torch.cat([p[0] for p in parts], dim=0)
        return mean, (torch.cat([p[1] for p in parts], dim=1) if replicas else None)

    def _cross(self, p: torch.Tensor, groups: int) -> torch.Tensor:
        """(g, m, n) cross-kernel of ``p`` to the training runs, one per hyperparameter group."""
        dtype = p.dtype
        hyp = {k: torch.as_tensor(v[:groups], dtype=dtype) for k, v in self.hyper.items()}
        return _kernel(self.basis.features_torch(p), torch.as_tensor(self.train_f, dtype=dtype),
                       self.basis.design_torch(p), torch.as_tensor(self.train_h, dtype=dtype), hyp)

    def _predict_chunk(self, p: torch.Tensor, replicas: bool, groups: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        dtype = p.dtype
        t, n = self.alpha.shape
        cross = self._cross(p, groups)  # (g, m, n)
        y = torch.as_tensor(self.y, dtype=dtype)
        alpha = torch.as_tensor(self.alpha, dtype=dtype)
        if groups == 1:
            mean = (cross[0] @ alpha.T) * y[:, 1] + y[:, 0]  # (m, t)
        else:
            mean = ((cross @ alpha[:, :, None])[..., 0] * y[:, 1:2] + y[:, :1]).T
        if not replicas:
            return mean, None
        y_reps = torch.as_tensor(self.y_reps, dtype=dtype)  # (t, B, 2)
        alphas = torch.as_tensor(self.alphas, dtype=dtype)  # (t, B, n)
        if groups == 1:
            raw = (alphas.reshape(-1, n) @ cross[0].T).reshape(t, -1, len(p))  # (t, B, m)
        else:
            raw = alphas @ cross.transpose(1, 2)
        reps = raw * y_reps[..., 1:2] + y_reps[..., :1]
        return mean, reps.permute(1, 2, 0)  # (m, t), (B, m, t)
