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
counts), giving a score: ``r_i`` over that band's side (5th or 95th
percentile minus the median) in the direction of ``r_i``. The interval scale ``c`` is
the conformal ``ceil((n + 1) 0.9) / n`` quantile of the scores; every
replica's deviation from the point prediction is multiplied by ``c``. The
coverage reported is cross-fitted: runs of fold f are judged with the ``c``
of the other folds' scores, so no run calibrates its own interval.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

INTERVAL = (5.0, 95.0)  # percentiles of the replicas: a 90% interval
LEVEL = 0.90
MIN_OUT_OF_BAG = 5  # a run's band needs at least this many refits that left it out
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

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        return self.law.predict_torch(mixtures)[None, :] + torch.as_tensor(self.offsets, dtype=mixtures.dtype)[:, None]


def interval(replicas: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds (5th and 95th percentiles) across replicas."""
    lo, hi = np.percentile(replicas, INTERVAL, axis=axis)
    return lo, hi


def out_of_bag_bounds(replicas: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) lower and upper sides of the 90 % band of the replicas (B, n) at each run, over the refits
    whose resample left that run out: their 5th and 95th percentiles minus their median (the same
    percentile band the interval shows); NaN where fewer than MIN_OUT_OF_BAG refits left it out."""
    out = np.asarray(counts) == 0
    masked = np.where(out, replicas, np.nan)
    enough = out.sum(0) >= MIN_OUT_OF_BAG
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runs no refit left out: all-NaN columns
        lo, mid, hi = np.nanpercentile(masked, (INTERVAL[0], 50.0, INTERVAL[1]), axis=0)
    return np.where(enough, lo - mid, np.nan), np.where(enough, hi - mid, np.nan)


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
    rank = min(len(s), math.ceil((len(s) + 1) * level))  # the rank-th smallest score
    return float(np.partition(s, rank - 1)[rank - 1])


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
