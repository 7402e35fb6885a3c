"""Uncertainty: bootstrap refits over runs, or held-out residuals for laws not refitted,
calibrated on held-out runs so that a "90 %" interval holds 90 % of new runs.

Smooth laws are refitted on B resamples of the runs (drawn with replacement;
a resample is a vector of counts, so refits batch like CV folds). Tree laws are
not refitted (``has_refits = False``): replica b predicts ``f(p) + q_b``, with
``q_b`` the ``(b + 0.5) / B`` quantile of the held-out CV residuals -- a
split-conformal interval (Lei et al. 2018), and their replicas say nothing
about where the optimum could be.

Calibration (split-conformal scaling, normalised by the spread; Lei et al.
2018, Sec. 5.2). The raw refit spread is model uncertainty only and ignores the
noise of a run, so it under-covers (on RegMix runs, ~55 % for "90 %"). For
each run i, take its CV residual ``r_i`` (the fold model never saw it) and the
spread of the refits that left it out (out-of-bag: no refit that saw run i
counts), giving a score ``|r_i| / half-width_i``. The interval scale ``c`` is
the conformal ``ceil((n + 1) 0.9) / n`` quantile of the scores; every
replica's deviation from the point prediction is multiplied by ``c``. The
coverage reported is cross-fitted: runs of fold f are judged with the ``c``
of the other folds' scores, so no run calibrates its own interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

INTERVAL = (5.0, 95.0)  # percentiles of the replicas: a 90% interval
LEVEL = 0.90
Z90 = 1.6448536269514722  # half-width of a central 90 % normal interval, in standard deviations
MIN_CALIBRATION_RUNS = 10  # fewer scores than this: no calibration (scale 1), coverage unknown


def bootstrap_counts(n: int, replicas: int, seed: int) -> np.ndarray:
    """(B, n) how often each run is drawn in each resample."""
    rng = np.random.default_rng(seed + 7919)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicas).astype(float)


def residual_offsets(actual: np.ndarray, predicted: np.ndarray, replicas: int) -> np.ndarray:
    """(B,) evenly spaced quantiles of the held-out residuals ``actual - predicted``."""
    resid = np.asarray(actual, float) - np.asarray(predicted, float)
    resid = resid[np.isfinite(resid)]
    if len(resid) == 0:
        return np.zeros(max(replicas, 1))
    return np.quantile(resid, (np.arange(replicas) + 0.5) / replicas)


class OffsetReplicas:
    """Replicas of a law that is not refitted: its prediction shifted by residual quantiles."""

    def __init__(self, law: Any, offsets: np.ndarray) -> None:
        self.law, self.offsets = law, np.asarray(offsets, dtype=float)

    def predict(self, mixtures: np.ndarray) -> np.ndarray:
        return self.law.predict(mixtures)[None, :] + self.offsets[:, None]


def interval(replicas: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds (5th and 95th percentiles) across replicas."""
    lo, hi = np.percentile(replicas, INTERVAL, axis=axis)
    return lo, hi


def out_of_bag_halfwidth(replicas: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(n,) normal 90 % half-width (Z90 x std) of the replicas (B, n) at each run, over the refits
    whose resample left that run out; NaN where fewer than 3 did."""
    out = np.asarray(counts) == 0
    k = out.sum(0)
    mean = (replicas * out).sum(0) / np.maximum(k, 1)
    var = (((replicas - mean) ** 2) * out).sum(0) / np.maximum(k - 1, 1)
    return np.where(k >= 3, Z90 * np.sqrt(var), np.nan)


def scores(residuals: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(n,) how many times its interval side each residual ``actual - predicted`` is: a run lies in
    ``[pred + c lower, pred + c upper]`` exactly when its score is <= c (lower < 0 < upper)."""
    r = np.asarray(residuals, float)
    side = np.where(r >= 0, np.asarray(upper, float), -np.asarray(lower, float))
    return np.abs(r) / np.maximum(side, 1e-300)


def conformal_scale(values: np.ndarray, level: float = LEVEL) -> float:
    """The split-conformal quantile ``ceil((n + 1) level) / n`` of the scores (1.0 with too few)."""
    s = np.asarray(values, float)
    s = s[np.isfinite(s)]
    if len(s) < MIN_CALIBRATION_RUNS:
        return 1.0
    q = min(1.0, math.ceil((len(s) + 1) * level) / len(s))
    return float(np.quantile(s, q, method="higher"))


def cross_fitted_coverage(values: np.ndarray, ids: np.ndarray, level: float = LEVEL) -> float:
    """Share of runs inside their interval when fold f's runs use the scale of the other folds' scores."""
    s = np.asarray(values, float)
    inside, judged = 0, 0
    for fold in np.unique(ids):
        held = (ids == fold) & np.isfinite(s)
        scale = conformal_scale(s[(ids != fold)], level)
        inside += int((s[held] <= scale).sum())
        judged += int(held.sum())
    return inside / judged if judged else float("nan")


def raw_coverage(values: np.ndarray) -> float:
    """Share of runs inside the uncalibrated interval (scale 1)."""
    s = np.asarray(values, float)
    s = s[np.isfinite(s)]
    return float((s <= 1.0).mean()) if len(s) else float("nan")
