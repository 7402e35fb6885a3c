"""Uncertainty: bootstrap refits over runs, or held-out residuals for laws too slow to refit.

Smooth laws are refitted on B resamples of the runs (drawn with replacement;
a resample is a vector of counts, so refits batch like CV folds). Tree laws use
the spread of their own cross-validated errors instead: replica b predicts
``f(p) + q_b``, with ``q_b`` the ``(b + 0.5) / B`` quantile of the held-out
residuals -- a split-conformal style interval (Lei et al. 2018), computed from
the 5-fold CV that is run anyway.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INTERVAL = (5.0, 95.0)  # percentiles of the replicas: a 90% interval


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
