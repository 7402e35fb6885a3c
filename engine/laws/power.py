"""Scale laws: how a target moves with tokens (and model size), mixture held fixed.

* :class:`TokenPowerLaw` -- ``y(D) = E + B * D^(-beta)`` (the step law that Ye et al. 2024 nest with
  mixing laws, Sec. 4): on one learning curve, on many curves with one offset per run
  (``groups``), or across runs at several budgets with the mixture as linear covariates.
* :class:`ChinchillaLaw` -- ``y(N, D) = E + A * N^(-alpha) + B * D^(-beta)`` (Hoffmann et al. 2022,
  Eq. 2; Gadre et al. 2024 fit it in the over-trained regime) where runs differ in model size.

Both are fitted the same way: the terms that enter linearly and are not of interest (the
offset ``E``, one offset per run, the mixture's linear effect) are projected out in closed form,
then ``scipy.optimize.least_squares`` (bounds, ``soft_l1`` loss) fits the power terms from the
best point of a coarse grid over the exponents. A solve that does not converge, or an exponent
that runs to its bound, is a :class:`FitError` with the reason, so a caller can fall back to a
prior and say why.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import least_squares, nnls

from engine.errors import FitError

_EXPONENTS = np.linspace(0.02, 1.5, 38)
_EXPONENT_BOUNDS = (1e-4, 5.0)
MIN_EXPLAINED = 0.05  # a power term that explains less of the variation (after the offsets) is no fit
_REFERENCE = 1e9  # tokens/params are divided by this inside the solve so the numbers stay O(1)


class _Projector:
    """Removes what the nuisance terms can explain: an offset (per group if ``groups``) and ``covariates``."""

    def __init__(self, n: int, groups: np.ndarray | None, covariates: np.ndarray | None) -> None:
        self.groups = None if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
        self.count = None if self.groups is None else np.bincount(self.groups).astype(float)
        self.basis = None
        if covariates is not None and np.size(covariates):
            centred = self._centre(np.asarray(covariates, dtype=float).reshape(n, -1))
            u, s, _ = np.linalg.svd(centred, full_matrices=False)
            keep = s > (s[0] if s.size else 0.0) * 1e-10
            self.basis = u[:, keep] if keep.any() else None

    def _centre(self, v: np.ndarray) -> np.ndarray:
        if self.groups is None:
            return v - v.mean(axis=0)
        sums = np.zeros((self.count.size,) + v.shape[1:])
        np.add.at(sums, self.groups, v)
        return v - (sums / self.count.reshape((-1,) + (1,) * (v.ndim - 1)))[self.groups]

    def __call__(self, v: np.ndarray) -> np.ndarray:
        v = self._centre(v)
        if self.basis is not None:
            v = v - self.basis @ (self.basis.T @ v)
        return v

    @property
    def dof(self) -> int:
        """Parameters the projection used up."""
        used = 1 if self.groups is None else int(self.count.size)
        return used + (0 if self.basis is None else self.basis.shape[1])


def _fit_terms(law: str, scales: list[np.ndarray], y: np.ndarray, project: _Projector,
               fixed: list[float | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients c_i >= 0 and exponents e_i of ``sum_i c_i * scale_i^-e_i`` after projecting out the nuisance.

    ``fixed``: an exponent per term, or None where it is fitted.
    """
    m = len(scales)
    fixed = fixed or [None] * m
    free = [i for i in range(m) if fixed[i] is None]
    target = project(y)
    if float(target @ target) <= 0:
        raise FitError(f"{law}: every value is explained by the offsets alone, so there is no scale effect to fit.")

    def exponents(free_values) -> list[float]:
        values = iter(free_values)
        return [next(values) if f is None else f for f in fixed]

    grid = _EXPONENTS if len(free) <= 1 else _EXPONENTS[::2]
    best = None
    for trial in itertools.product(grid, repeat=len(free)):
        design = np.column_stack([project(s ** -e) for s, e in zip(scales, exponents(trial))])
        coef, resid = nnls(design, target)
        if best is None or resid < best[0]:
            best = (resid, coef, trial)
    _, coef0, free0 = best

    def residual(theta):
        return sum(c * project(s ** -e) for c, s, e in zip(theta[:m], scales, exponents(theta[m:]))) - target

    lo, hi = _EXPONENT_BOUNDS
    start = np.concatenate([np.maximum(coef0, 1e-9), free0])
    result = least_squares(residual, start, bounds=([0.0] * m + [lo] * len(free), [np.inf] * m + [hi] * len(free)),
                           loss="soft_l1", f_scale=max(np.std(target), 1e-12) * 0.1)
    if not result.success or not np.isfinite(result.x).all():
        raise FitError(f"{law}: the least-squares solve did not converge ({result.message}).")
    coef, exps = result.x[:m], np.array(exponents(result.x[m:]))
    fitted = exps[free]
    if np.any(np.isclose(fitted, lo, atol=1e-6)) or np.any(np.isclose(fitted, hi, atol=1e-6)):
        raise FitError(f"{law}: an exponent ran to its bound ({', '.join(f'{e:.3g}' for e in exps)}): "
                       "the data do not pin the scale effect down.")
    explained = 1.0 - float(np.sum((residual(result.x)) ** 2)) / float(target @ target)
    if not np.any(coef > 0) or explained < MIN_EXPLAINED:
        raise FitError(f"{law}: the power term explains {max(explained, 0.0):.1%} of the variation "
                       "(values do not fall with scale as the law says).")
    return coef, exps


def _clean(law: str, columns: list[np.ndarray], y: np.ndarray, needed: int,
           extra: list[np.ndarray | None]) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray | None]]:
    y = np.asarray(y, dtype=float)
    cols = [np.asarray(c, dtype=float) for c in columns]
    keep = np.isfinite(y) & np.all([np.isfinite(c) & (c > 0) for c in cols], axis=0)
    rows = [None if e is None else np.asarray(e) for e in extra]
    for e in rows:
        if e is not None and e.ndim == 2:
            keep &= np.isfinite(e).all(axis=1)
    if keep.sum() < needed:
        raise FitError(f"{law}: needs at least {needed} points with positive tokens/size and a finite value, "
                       f"got {int(keep.sum())}.")
    for c in cols:
        if np.ptp(np.log(c[keep])) < 1e-9:
            raise FitError(f"{law}: every point has the same scale, so the exponent cannot be fitted.")
    return [c[keep] / _REFERENCE for c in cols], y[keep], [None if e is None else e[keep] for e in rows]


class TokenPowerLaw:
    """``y = E + B * D^-beta``; ``E_`` is the mean offset where runs (``groups``) or covariates take their own."""

    name: ClassVar[str] = "token_power"

    def fit(self, tokens: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None = None,
            covariates: np.ndarray | None = None) -> "TokenPowerLaw":
        """``groups``: one offset per group (e.g. per run, for learning curves); ``covariates`` (n, q): linear
        nuisance terms (e.g. the mixture, for runs at several budgets)."""
        q = 0 if covariates is None else np.asarray(covariates).reshape(len(np.asarray(y)), -1).shape[1]
        (d,), y, (groups, covariates) = _clean(self.name, [tokens], y, needed=3 + q, extra=[groups, covariates])
        project = _Projector(len(y), groups, covariates)
        if len(y) - project.dof < 2:
            raise FitError(f"{self.name}: {len(y)} points leave too few degrees of freedom after the offsets.")
        (b,), (beta,) = _fit_terms(self.name, [d], y, project)
        self.beta_ = float(beta)
        self.B_ = float(b) * _REFERENCE ** self.beta_  # back to raw token units
        self.E_ = float(np.mean(y - b * d ** -beta))
        return self

    def predict(self, tokens: np.ndarray) -> np.ndarray:
        return self.E_ + self.B_ * np.asarray(tokens, dtype=float) ** -self.beta_

    @property
    def params(self) -> dict[str, Any]:
        return {"E": self.E_, "B": self.B_, "beta": self.beta_}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TokenPowerLaw":
        law = cls()
        law.E_, law.B_, law.beta_ = float(params["E"]), float(params["B"]), float(params["beta"])
        return law


class ChinchillaLaw:
    """``y = E + A * N^-alpha + B * D^-beta``; ``covariates`` as in :class:`TokenPowerLaw`."""

    name: ClassVar[str] = "chinchilla"

    def fit(self, model_params: np.ndarray, tokens: np.ndarray, y: np.ndarray, *,
            covariates: np.ndarray | None = None, alpha: float | None = None) -> "ChinchillaLaw":
        """``alpha``: hold the size exponent fixed (two model sizes give the size term's scale, not its exponent)."""
        q = 0 if covariates is None else np.asarray(covariates).reshape(len(np.asarray(y)), -1).shape[1]
        (n, d), y, (covariates,) = _clean(self.name, [model_params, tokens], y, needed=5 + q, extra=[covariates])
        if alpha is None and np.unique(n).size < 3:
            raise FitError(f"{self.name}: {np.unique(n).size} model sizes cannot fix the size exponent; "
                           "give alpha or runs of three or more sizes.")
        project = _Projector(len(y), None, covariates)
        if len(y) - project.dof < 4:
            raise FitError(f"{self.name}: {len(y)} points leave too few degrees of freedom after the covariates.")
        (a, b), (alpha, beta) = _fit_terms(self.name, [n, d], y, project, fixed=[alpha, None])
        self.alpha_, self.beta_ = float(alpha), float(beta)
        self.A_ = float(a) * _REFERENCE ** self.alpha_
        self.B_ = float(b) * _REFERENCE ** self.beta_
        self.E_ = float(np.mean(y - a * n ** -alpha - b * d ** -beta))
        return self

    def predict(self, model_params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        n = np.asarray(model_params, dtype=float)
        d = np.asarray(tokens, dtype=float)
        return self.E_ + self.A_ * n**-self.alpha_ + self.B_ * d**-self.beta_

    @property
    def params(self) -> dict[str, Any]:
        return {"E": self.E_, "A": self.A_, "alpha": self.alpha_, "B": self.B_, "beta": self.beta_}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "ChinchillaLaw":
        law = cls()
        law.E_, law.A_, law.alpha_ = float(params["E"]), float(params["A"]), float(params["alpha"])
        law.B_, law.beta_ = float(params["B"]), float(params["beta"])
        return law
