"""Linear mixing law: ``y = c + sum_j a_j p_j``.

The law behind RegMix's linear regression (Liu et al. 2024, Sec. 3) and the
static law of the Aioli framework (Chen et al. 2024, Eq. 2). Because shares sum
to one, ``c`` and a common shift of ``a`` cannot be told apart; we fix
``sum_j a_j = 0``, so ``c`` is the predicted value at the uniform mixture and
``a_j`` how much better or worse than average domain j is.

Fitted in closed form (weighted ridge on ``a' = a + c``, the penalty pulling the
``a'_j`` towards their mean so few runs give a flat, not a wild, law), batched over
weight vectors and targets.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from engine.errors import FitError
from engine.laws.base import (
    LawBase,
    ParamReplicas,
    as_mixtures,
    check_batch_input,
    pack_array,
    unpack_array,
)


class LinearLaw(LawBase):
    name: ClassVar[str] = "linear"
    smooth: ClassVar[bool] = True

    def __init__(self, ridge: float = 1e-4) -> None:
        self.ridge = ridge

    def fit(self, mixtures, y, *, tokens=None, model_params=None) -> "LinearLaw":
        y = np.asarray(y, dtype=float)
        fitted = self.fit_batch(np.asarray(mixtures, dtype=float), y[:, None], np.ones((1, len(y))),
                                options={"ridge": self.ridge})
        self.intercept_, self.coef_ = fitted[0][0].intercept_, fitted[0][0].coef_
        return self

    @classmethod
    def fit_batch(cls, mixtures, targets, weights, *, options=None) -> list[list["LinearLaw"]]:
        ridge = float((options or {}).get("ridge", 1e-4))
        mixtures, targets, weights, observed = check_batch_input(cls.name, mixtures, targets, weights)
        n, k = mixtures.shape
        y = np.where(observed, targets, 0.0)  # (n, t)
        centering = np.eye(k) - np.full((k, k), 1.0 / k)
        solved = np.empty((len(weights), targets.shape[1], k))
        # Targets measured on the same runs share their Gram matrices: one (R, k, k) stack per pattern
        # of observed runs (usually one), each target a right-hand side (a Gram matrix per
        # (replica, target) cost 156 s on 512 runs x 64 domains x 110 targets).
        patterns, which = np.unique(observed.T, axis=0, return_inverse=True)
        for j, pattern in enumerate(patterns):
            cols = np.flatnonzero(which.reshape(-1) == j)
            weighted = ((weights * pattern)[:, :, None] * mixtures).transpose(0, 2, 1)  # (R, k, n)
            gram = weighted @ mixtures
            scale = np.trace(gram, axis1=1, axis2=2)[:, None, None] / k
            rhs = weighted @ y[:, cols]  # (R, k, c)
            solved[:, cols] = np.linalg.solve(gram + ridge * scale * centering + 1e-12 * np.eye(k), rhs).transpose(0, 2, 1)
        if not np.isfinite(solved).all():
            raise FitError("linear: the least-squares solve produced non-finite coefficients.")
        out = []
        for r in range(len(weights)):
            row = []
            for i in range(targets.shape[1]):
                law = cls(ridge=ridge)
                law.intercept_ = float(solved[r, i].mean())
                law.coef_ = solved[r, i] - law.intercept_
                row.append(law)
            out.append(row)
        return out

    def predict(self, mixtures, *, tokens=None, model_params=None) -> np.ndarray:
        self.check_fitted()
        p = as_mixtures(mixtures, len(self.coef_))
        return self.intercept_ + p @ self.coef_

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        return self.intercept_ + mixtures @ torch.as_tensor(self.coef_, dtype=mixtures.dtype)

    @property
    def params(self) -> dict[str, Any]:
        return {"ridge": self.ridge, "intercept": self.intercept_, "coef": self.coef_.tolist()}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "LinearLaw":
        law = cls(ridge=params["ridge"])
        law.intercept_ = float(params["intercept"])
        law.coef_ = np.asarray(params["coef"], dtype=float)
        return law

    @classmethod
    def pack_replicas(cls, laws: list["LinearLaw"]) -> dict[str, Any]:
        """B refits as two arrays (intercepts (B,), coefficients (B, k))."""
        return {"intercept": pack_array([law.intercept_ for law in laws]),
                "coef": pack_array(np.stack([law.coef_ for law in laws]))}

    @classmethod
    def unpack_replicas(cls, packed: dict[str, Any], full: "LinearLaw | None" = None) -> "LinearReplicas | ParamReplicas":
        if "params" in packed:  # stored before the arrays
            return super().unpack_replicas(packed, full)
        return LinearReplicas(unpack_array(packed["intercept"]), unpack_array(packed["coef"]))


class LinearReplicas:
    """B refits of one target, predicted in one product."""

    def __init__(self, intercepts: np.ndarray, coefs: np.ndarray) -> None:
        self.intercepts, self.coefs = intercepts, coefs

    def predict(self, mixtures: np.ndarray) -> np.ndarray:
        p = as_mixtures(mixtures, self.coefs.shape[1])
        return self.intercepts[:, None] + self.coefs @ p.T  # (B, m)

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        coefs = torch.as_tensor(self.coefs, dtype=mixtures.dtype)
        return torch.as_tensor(self.intercepts, dtype=mixtures.dtype)[:, None] + coefs @ mixtures.T
