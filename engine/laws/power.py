"""Scale laws: how a target moves with tokens (and model size), mixture held fixed.

* :class:`TokenPowerLaw` -- ``y(D) = E + B * D^(-beta)`` on one run's learning curve
  (the step law that Ye et al. 2024 nest with mixing laws, Sec. 4), so a proxy's
  curve can be extrapolated to more tokens.
* :class:`ChinchillaLaw` -- ``y(N, D) = E + A * N^(-alpha) + B * D^(-beta)``
  (Hoffmann et al. 2022, Eq. 2; Gadre et al. 2024 fit it in the over-trained
  regime) where runs differ in model size.

Both: a grid over the exponents with the linear coefficients in closed form
(non-negative), then ``scipy.optimize.least_squares`` (``soft_l1`` loss, bounds)
from the best grid point; a failed solve is a :class:`FitError`.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import least_squares, nnls

from engine.errors import FitError

_EXPONENTS = np.linspace(0.02, 1.5, 38)
_REFERENCE = 1e9  # tokens/params are divided by this inside the solve so the numbers stay O(1)


def _clean(law: str, columns: list[np.ndarray], y: np.ndarray, needed: int) -> tuple[list[np.ndarray], np.ndarray]:
    y = np.asarray(y, dtype=float)
    cols = [np.asarray(c, dtype=float) for c in columns]
    keep = np.isfinite(y) & np.all([np.isfinite(c) & (c > 0) for c in cols], axis=0)
    if keep.sum() < needed:
        raise FitError(f"{law}: needs at least {needed} points with positive tokens/size and a finite value, "
                       f"got {int(keep.sum())}.")
    for c in cols:
        if np.ptp(np.log(c[keep])) < 1e-9:
            raise FitError(f"{law}: every point has the same scale, so the exponent cannot be fitted.")
    return [c[keep] / _REFERENCE for c in cols], y[keep]


class TokenPowerLaw:
    name: ClassVar[str] = "token_power"

    def fit(self, tokens: np.ndarray, y: np.ndarray) -> "TokenPowerLaw":
        (d,), y = _clean(self.name, [tokens], y, needed=3)
        best = None
        for beta in _EXPONENTS:
            design = np.column_stack([np.ones_like(d), d**-beta])
            coef, resid = nnls(design, y)
            if best is None or resid < best[0]:
                best = (resid, coef[0], coef[1], beta)
        _, e0, b0, beta0 = best

        def residual(theta):
            return theta[0] + theta[1] * d ** -theta[2] - y

        result = least_squares(residual, [e0, max(b0, 1e-9), beta0], bounds=([-np.inf, 0, 1e-4], [np.inf, np.inf, 5]),
                               loss="soft_l1", f_scale=max(np.std(y), 1e-9) * 0.1)
        if not result.success or not np.isfinite(result.x).all():
            raise FitError(f"{self.name}: the least-squares solve failed ({result.message}).")
        self.E_, b_scaled, self.beta_ = (float(v) for v in result.x)
        self.B_ = b_scaled * _REFERENCE**self.beta_  # back to raw token units
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
    name: ClassVar[str] = "chinchilla"

    def fit(self, model_params: np.ndarray, tokens: np.ndarray, y: np.ndarray) -> "ChinchillaLaw":
        (n, d), y = _clean(self.name, [model_params, tokens], y, needed=5)
        best = None
        grid = _EXPONENTS[::2]
        for alpha, beta in itertools.product(grid, grid):
            design = np.column_stack([np.ones_like(d), n**-alpha, d**-beta])
            coef, resid = nnls(design, y)
            if best is None or resid < best[0]:
                best = (resid, coef, alpha, beta)
        _, coef, alpha0, beta0 = best

        def residual(theta):
            return theta[0] + theta[1] * n ** -theta[3] + theta[2] * d ** -theta[4] - y

        start = [coef[0], max(coef[1], 1e-9), max(coef[2], 1e-9), alpha0, beta0]
        result = least_squares(residual, start, bounds=([-np.inf, 0, 0, 1e-4, 1e-4], [np.inf, np.inf, np.inf, 5, 5]),
                               loss="soft_l1", f_scale=max(np.std(y), 1e-9) * 0.1)
        if not result.success or not np.isfinite(result.x).all():
            raise FitError(f"{self.name}: the least-squares solve failed ({result.message}).")
        e, a_scaled, b_scaled, self.alpha_, self.beta_ = (float(v) for v in result.x)
        self.E_ = e
        self.A_ = a_scaled * _REFERENCE**self.alpha_
        self.B_ = b_scaled * _REFERENCE**self.beta_
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
