"""Exponential mixing law (Ye et al. 2024, "Data Mixing Laws", Eq. 1):
``y = c + k * exp(sum_j t_j p_j)``.

Shares sum to one, so a common shift of ``t`` is absorbed by ``k``: we fix
``sum_j t_j = 0`` and ``c + k`` is the predicted value at the uniform mixture.

Non-convex, so: a closed-form start per problem (``c`` a little below the
smallest value, then ``log(y - c)`` is linear in ``p``), several starts at
different floors, and batched Levenberg-Marquardt on a Huber loss (as
``scipy.optimize.least_squares(loss="huber")``) over every (weight vector,
target, start) at once in torch. The Huber threshold is ``huber`` robust
standard deviations: 1.4826 x the median absolute deviation of the residuals
(the consistent estimate of a normal sigma), held fixed within a stage. Stage 1
takes ``START_ITERATIONS`` steps from every start (threshold from the residuals
at the start); stage 2 goes on from the best start only (threshold from its
residuals) until each problem converges -- an accepted step lowers the loss by
less than ``FTOL`` or moves it by less than ``XTOL`` -- or ``iterations`` steps
pass; a problem still moving then is reported (``converged_`` False).
The residual scale and the robust scale use the rows a problem is fitted on
only, so a CV fold never sees its held-out runs. Bounds keep ``|t_j| <= 50``
and ``k > 0``; a small ridge on ``t`` keeps the law flat where few runs speak.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import torch

from engine.errors import FitError
from engine.laws.base import (
    LawBase,
    as_mixtures,
    check_batch_input,
    one_torch_thread,
    pack_array,
    unpack_array,
)

T_BOUND = 50.0
MAD_TO_SIGMA = 1.4826  # sigma = 1.4826 * median absolute deviation, for normal residuals
START_ITERATIONS = 10  # LM steps from every start before the best one is kept
FTOL = 1e-7  # converged: an accepted step lowers the loss by less than this fraction
XTOL = 1e-10  # or moves no parameter by more than this (relative)
CHUNK = 1024  # most problems one thread solves at once
FLOOR_FRACTIONS = (0.05, 0.5, 0.9)  # starting floors c = min(y) - range(y) * f / (2 (1 - f))


class ExponentialLaw(LawBase):
    name: ClassVar[str] = "exponential"
    smooth: ClassVar[bool] = True

    def __init__(self, ridge: float = 1e-4, huber: float = 1.5, iterations: int = 200) -> None:
        self.ridge = ridge
        self.huber = huber  # in robust standard deviations of the residuals
        self.iterations = iterations  # most LM steps per stage; most problems converge long before

    def _options(self) -> dict[str, Any]:
        return {"ridge": self.ridge, "huber": self.huber, "iterations": self.iterations}

    def fit(self, mixtures, y, *, tokens=None, model_params=None) -> "ExponentialLaw":
        y = np.asarray(y, dtype=float)
        law = self.fit_batch(np.asarray(mixtures, dtype=float), y[:, None], np.ones((1, len(y))),
                             options=self._options())[0][0]
        self.c_, self.k_, self.t_, self.converged_ = law.c_, law.k_, law.t_, law.converged_
        return self

    @classmethod
    def fit_refits(cls, mixtures, targets, counts, full, *, options=None):
        """Refits start from the fit on all runs (one start): a resample moves it little, so they converge fast."""
        return cls.fit_batch(mixtures, targets, counts, options=options, start=full)

    @classmethod
    def fit_batch(cls, mixtures, targets, weights, *, options=None,
                  start: list["ExponentialLaw"] | None = None) -> list[list["ExponentialLaw"]]:
        options = {**cls()._options(), **(options or {})}
        mixtures, targets, weights, observed = check_batch_input(cls.name, mixtures, targets, weights)
        n_rep, n_tgt = len(weights), targets.shape[1]
        w = torch.as_tensor(weights[:, None, :] * observed.T[None], dtype=torch.float64).reshape(-1, len(mixtures))
        y = torch.as_tensor(np.where(observed, targets, 0.0).T, dtype=torch.float64).repeat(n_rep, 1)
        p = torch.as_tensor(mixtures, dtype=torch.float64)
        with one_torch_thread():
            if start is None:
                starts = _starts(p, y, w)
            else:
                one = torch.as_tensor(np.stack([np.concatenate([[law.c_, np.log(law.k_)], law.t_]) for law in start]))
                starts = one.repeat(n_rep, 1)[None]
            # Problems are independent: parts of the batch run side by side on a thread per core
            # (torch releases the GIL); each problem's result does not depend on the split. Parts of
            # at most CHUNK problems bound the memory (11,000 refit problems on 2,048 runs held GBs of
            # (problems, runs) arrays at once) and keep both cores busy while a part's slowest
            # problems converge.
            workers = max(1, min(os.cpu_count() or 1, len(y) // 64))
            parts = np.array_split(np.arange(len(y)), max(workers, -(-len(y) // CHUNK)))
            with ThreadPoolExecutor(workers) as pool:
                done = list(pool.map(lambda idx: _fit_lm(p, y[idx], w[idx], starts[:, idx], options), parts))
            theta, converged = torch.cat([d[0] for d in done]), torch.cat([d[1] for d in done])
        if not torch.isfinite(theta).all():
            raise FitError("exponential: the fit produced non-finite parameters.")
        theta = theta.reshape(n_rep, n_tgt, -1).numpy()
        converged = converged.reshape(n_rep, n_tgt).numpy()
        out = []
        for r in range(n_rep):
            row = []
            for i in range(n_tgt):
                law = cls(**options)
                law.c_, law.k_, law.t_ = _unpack(theta[r, i])
                law.converged_ = bool(converged[r, i])
                row.append(law)
            out.append(row)
        return out

    def predict(self, mixtures, *, tokens=None, model_params=None) -> np.ndarray:
        self.check_fitted()
        p = as_mixtures(mixtures, len(self.t_))
        return self.c_ + self.k_ * np.exp(np.clip(p @ self.t_, -700, 700))

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        return self.c_ + self.k_ * torch.exp(mixtures @ torch.as_tensor(self.t_, dtype=mixtures.dtype))

    @property
    def params(self) -> dict[str, Any]:
        return {**self._options(), "c": self.c_, "k": self.k_, "t": self.t_.tolist(), "converged": self.converged_}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "ExponentialLaw":
        law = cls(ridge=params["ridge"], huber=params["huber"], iterations=params["iterations"])
        law.c_, law.k_, law.t_ = float(params["c"]), float(params["k"]), np.asarray(params["t"], dtype=float)
        law.converged_ = bool(params.get("converged", True))
        return law

    @classmethod
    def pack_replicas(cls, laws: list["ExponentialLaw"]) -> dict[str, Any]:
        """B refits as arrays: c (B,), k (B,), t (B, k) and whether each converged."""
        return {"c": pack_array([law.c_ for law in laws]), "k": pack_array([law.k_ for law in laws]),
                "t": pack_array(np.stack([law.t_ for law in laws])), "converged": [bool(law.converged_) for law in laws]}

    @classmethod
    def unpack_replicas(cls, packed: dict[str, Any], full: "ExponentialLaw | None" = None):
        if "params" in packed:  # stored before the arrays
            return super().unpack_replicas(packed, full)
        return ExponentialReplicas(unpack_array(packed["c"]), unpack_array(packed["k"]), unpack_array(packed["t"]))


class ExponentialReplicas:
    """B refits of one target, predicted in one product."""

    def __init__(self, c: np.ndarray, k: np.ndarray, t: np.ndarray) -> None:
        self.c, self.k, self.t = c, k, t

    def predict(self, mixtures: np.ndarray) -> np.ndarray:
        p = as_mixtures(mixtures, self.t.shape[1])
        return self.c[:, None] + self.k[:, None] * np.exp(np.clip(self.t @ p.T, -700, 700))  # (B, m)

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(self.t, dtype=mixtures.dtype)
        c, k = (torch.as_tensor(v, dtype=mixtures.dtype)[:, None] for v in (self.c, self.k))
        return c + k * torch.exp(t @ mixtures.T)


def _unpack(theta: np.ndarray) -> tuple[float, float, np.ndarray]:
    """theta = [c, log k, u_1..u_k] with t = u - mean(u)."""
    t = theta[2:] - theta[2:].mean()
    return float(theta[0]), float(np.exp(theta[1])), t


def _model(p: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(B, n) predictions for parameter rows theta (B, 2 + k)."""
    u = theta[:, 2:]
    t = u - u.mean(dim=1, keepdim=True)
    return theta[:, :1] + torch.exp(theta[:, 1:2] + t @ p.T)


def _normal_equations(e: torch.Tensor, weight: torch.Tensor, resid: torch.Tensor, centred: torch.Tensor,
                      outer: torch.Tensor, mirror: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """J^T W J (B, q, q) and J^T W r (B, q) for the Jacobian J = [1, E, E * (p_j - mean_j p)], E = exp(log k + t.p).

    J is never formed: its blocks share ``centred`` (n, k) across the batch, so every block is one
    matrix product over the runs (``outer`` is (n, k (k + 1) / 2), the products of centred shares on and
    above the diagonal: the block is symmetric; ``mirror`` (k*k,) places them), ~10x faster than a batched
    J^T W J on one thread, and the half product and its gather take 60 % of the time of the whole product.
    """
    batch, k = len(e), centred.shape[1]
    a1, a2 = weight * e, weight * e**2
    jtj = torch.empty(batch, k + 2, k + 2, dtype=e.dtype)
    jtj[:, 0, 0] = weight.sum(1)
    jtj[:, 0, 1] = jtj[:, 1, 0] = a1.sum(1)
    jtj[:, 1, 1] = a2.sum(1)
    jtj[:, 0, 2:] = a1 @ centred
    jtj[:, 1, 2:] = a2 @ centred
    jtj[:, 2:, 0], jtj[:, 2:, 1] = jtj[:, 0, 2:], jtj[:, 1, 2:]
    # The (A, n) x (n, k^2) product is nearly all the cost; in float32 it is twice as fast, and the
    # step stays a descent step (the gradient and the loss that accepts a step stay float64; LM
    # only needs an approximate curvature).
    jtj[:, 2:, 2:] = torch.index_select(a2.to(outer.dtype) @ outer, 1, mirror).reshape(batch, k, k)
    wr = weight * resid
    wre = wr * e
    grad = torch.cat([wr.sum(1, keepdim=True), wre.sum(1, keepdim=True), wre @ centred], dim=1)
    return jtj, grad


def _starts(p: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(S, B, 2 + k) starting points: for each floor c, weighted least squares of log(y - c) on p."""
    big = torch.finfo(y.dtype).max
    lo = torch.where(w > 0, y, big).min(dim=1).values
    hi = torch.where(w > 0, y, -big).max(dim=1).values
    spread = (hi - lo).clamp_min(1e-12)
    starts = []
    for fraction in FLOOR_FRACTIONS:
        c = lo - spread * fraction / (1 - fraction) * 0.5 - 1e-9
        z = torch.log((y - c[:, None]).clamp_min(1e-12))
        design = torch.cat([torch.ones_like(p[:, :1]), p], dim=1)  # intercept + shares (collinear: ridge)
        q = design.shape[1]
        # one (B, n) x (n, q*q) product: the three-operand einsum took 2.5 s of a 64 x 110 fit
        gram = (w @ (design[:, :, None] * design[:, None, :]).reshape(len(p), -1)).reshape(-1, q, q)
        gram = gram + 1e-6 * torch.eye(q, dtype=p.dtype) * gram.diagonal(dim1=1, dim2=2).mean(1)[:, None, None]
        coef = torch.linalg.solve(gram, (w * z) @ design)
        u = coef[:, 1:].clamp(-T_BOUND, T_BOUND)
        log_k = coef[:, 0] + u.mean(1)
        starts.append(torch.cat([c[:, None], log_k[:, None], u], dim=1))
    return torch.stack(starts)


def _weighted_median(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B,) median of each row of ``values`` (B, n) with run weights (counts; 0 = not in the problem)."""
    order = values.argsort(dim=1)
    v, w = values.gather(1, order), weights.gather(1, order)
    cum = w.cumsum(1)
    at = (cum < 0.5 * cum[:, -1:]).sum(1, keepdim=True).clamp_max(values.shape[1] - 1)
    return v.gather(1, at)[:, 0]


def _weighted_std(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B,) standard deviation of each problem's target over its own rows (weights w)."""
    total = w.sum(1)
    mean = (w * y).sum(1) / total
    return ((w * (y - mean[:, None]) ** 2).sum(1) / total).sqrt()


def _fit_lm(p: torch.Tensor, y: torch.Tensor, w: torch.Tensor, starts: torch.Tensor,
            options: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Levenberg-Marquardt on a Huber loss from ``starts`` (S, B, q): the best start per
    problem (B, q) and whether it converged (B,)."""
    n_starts, batch, q = starts.shape
    yy, ww = y.repeat(n_starts, 1), w.repeat(n_starts, 1)
    scale = _weighted_std(yy, ww) + 1e-12  # training rows only: a fold's held-out runs have weight 0
    ridge = options["ridge"] * ww.sum(1)
    theta = starts.reshape(-1, q).clone()
    if n_starts == 1:  # refits start at a solution: its residuals already give the robust scale
        theta, _, converged = _lm_stage(p, yy, ww, scale, ridge, theta, _robust_cut(p, yy, ww, scale, theta, options),
                                        int(options["iterations"]))
        return theta, converged
    # Stage 1: a few steps from every start tell the basins apart; only the best start goes on.
    theta, loss, _ = _lm_stage(p, yy, ww, scale, ridge, theta, _robust_cut(p, yy, ww, scale, theta, options),
                               START_ITERATIONS)
    best = loss.reshape(n_starts, batch).argmin(0)
    pick = best * batch + torch.arange(batch)
    theta, yy, ww, scale, ridge = theta[pick], yy[pick], ww[pick], scale[pick], ridge[pick]
    cut = _robust_cut(p, yy, ww, scale, theta, options)
    theta, _, converged = _lm_stage(p, yy, ww, scale, ridge, theta, cut, int(options["iterations"]))
    return theta, converged


def _robust_cut(p, yy, ww, scale, theta, options) -> torch.Tensor:
    """(B,) Huber threshold: ``huber`` x 1.4826 x the weighted median absolute deviation of the scaled residuals."""
    with torch.no_grad():
        resid = (_model(p, theta) - yy) / scale[:, None]
        centre = _weighted_median(resid, ww)
        mad = _weighted_median((resid - centre[:, None]).abs(), ww)
    return options["huber"] * MAD_TO_SIGMA * mad.clamp_min(1e-6)


def _huber_loss(p, yy, ww, scale, ridge, cut, theta) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled residuals (B, n) and the Huber loss plus ridge (B,) at ``theta``."""
    resid = (_model(p, theta) - yy) / scale[:, None]
    a = resid.abs()
    c = cut[:, None]
    rho = torch.where(a <= c, resid**2, 2 * c * a - c**2)
    u = theta[:, 2:]
    return resid, (ww * rho).sum(1) + ridge * ((u - u.mean(1, keepdim=True)) ** 2).sum(1)


def _solve_spd(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(B, q) solutions of the damped normal equations (B, q, q), positive definite (the damping, the
    ridge and the pin of u's shift see to it). NumPy's batched solve: for a stack of 66 x 66 systems it
    took a third of the time of torch's Cholesky factor and solve (34 vs 98 us a system, one thread)."""
    try:
        return torch.from_numpy(np.linalg.solve(matrix.numpy(), rhs.numpy()[..., None])[..., 0])
    except np.linalg.LinAlgError:  # an exactly singular system (never seen): least squares, one by one
        return torch.from_numpy(np.stack([np.linalg.lstsq(m, r, rcond=None)[0]
                                          for m, r in zip(matrix.numpy(), rhs.numpy())]))


def _lm_stage(p, yy, ww, scale, ridge, theta, cut, iterations: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LM on a fixed Huber loss until each problem converges; only unconverged problems are stepped."""
    q = theta.shape[1]
    shares = p - p.mean(dim=1, keepdim=True)  # d(t.p)/du_j, since t = u - mean(u)
    rows, cols = torch.triu_indices(q - 2, q - 2)
    outer = (shares[:, rows] * shares[:, cols]).to(torch.float32)  # (n, k (k + 1) / 2)
    mirror = torch.zeros(q - 2, q - 2, dtype=torch.long)  # where each (i, j) of the block is in ``outer``
    mirror[rows, cols] = mirror[cols, rows] = torch.arange(len(rows))
    mirror = mirror.reshape(-1)
    centred = torch.eye(q - 2, dtype=p.dtype) - 1.0 / (q - 2)
    theta = theta.clone()
    with torch.no_grad():
        resid, loss = _huber_loss(p, yy, ww, scale, ridge, cut, theta)
        damping = torch.full((len(theta),), 1e-3, dtype=p.dtype)
        converged = torch.zeros(len(theta), dtype=torch.bool)
        for _ in range(iterations):
            act = torch.nonzero(~converged)[:, 0]
            if len(act) == 0:
                break
            th, r, wa, sc, c = theta[act], resid[act], ww[act], scale[act], cut[act]
            robust = torch.where(r.abs() <= c[:, None], torch.ones_like(r), c[:, None] / r.abs().clamp_min(1e-300))
            u = th[:, 2:]
            e = torch.exp(th[:, 1:2] + (u - u.mean(dim=1, keepdim=True)) @ p.T)  # (A, n)
            jtj, grad = _normal_equations(e, wa * robust, r, shares, outer, mirror)
            jtj = jtj / (sc**2)[:, None, None]  # the Jacobian of the scaled residuals
            grad = grad / sc[:, None]
            jtj[:, 2:, 2:] += ridge[act, None, None] * centred
            grad[:, 2:] += ridge[act, None] * (u - u.mean(1, keepdim=True))
            # A common shift of u changes nothing (t = u - mean(u)), so J^T W J is singular along it
            # and, rounded, its Cholesky factor failed on most steps (an LU solve then). The gradient
            # has no part along that direction, so adding it to the matrix only pins the step's shift at 0.
            block = jtj[:, 2:, 2:]
            block += block.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] / (q - 2)
            diag = jtj.diagonal(dim1=1, dim2=2)
            diag += damping[act, None] * diag.clamp_min(1e-12) + 1e-10  # in place: J^T W J + lambda diag + jitter
            step = _solve_spd(jtj, grad)
            candidate = th - step
            candidate[:, 2:] = candidate[:, 2:].clamp(-T_BOUND, T_BOUND)
            candidate[:, 1] = candidate[:, 1].clamp(-50, 50)
            new_resid, new_loss = _huber_loss(p, yy[act], wa, sc, ridge[act], c, candidate)
            old = loss[act]
            better = torch.isfinite(new_loss) & (new_loss <= old)
            moved = (candidate - th).abs().max(1).values
            done = better & (((old - new_loss) <= FTOL * old.abs().clamp_min(1e-300))
                             | (moved <= XTOL * (1 + th.abs().max(1).values)))
            theta[act] = torch.where(better[:, None], candidate, th)
            resid[act] = torch.where(better[:, None], new_resid, r)
            loss[act] = torch.where(better, new_loss, old)
            damping[act] = torch.where(better, damping[act] * 0.3, damping[act] * 10).clamp(1e-9, 1e12)
            # a damping this large means no step lowers the loss any more: a (local) minimum
            converged[act] = done | (damping[act] >= 1e12)
        loss = torch.where(torch.isfinite(loss), loss, torch.full_like(loss, float("inf")))
    return theta, loss, converged
