"""Honest evaluation: grouped K-fold cross-validation over runs and its figures.

Folds are drawn over groups (a run and its checkpoints share a group), so a
run never sits on both sides of a split. Every law is judged on predictions for
runs it did not see: Spearman rho (ranking, what a mixture search needs),
Pearson r, MAE, RMSE and top-1 regret -- the true rank (1 = best) and the gap to
the best true value of the held-out run the law ranks best, over the pooled
held-out predictions of all folds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from engine.errors import FitError

MIN_RUNS = 4  # fewer runs than this cannot be cross-validated meaningfully


@dataclass(frozen=True)
class CVMetrics:
    """Held-out figures of one law on one objective (lower objective is better)."""

    spearman: float
    pearson: float
    mae: float
    rmse: float
    top1_rank: int
    top1_gap: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fold_ids(n: int, folds: int, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """(n,) fold of each run, drawn over groups with a seeded permutation; ``folds`` is capped at the group count."""
    groups = np.arange(n) if groups is None else np.asarray(groups)
    unique, inverse = np.unique(groups, return_inverse=True)
    if len(unique) < MIN_RUNS:
        raise FitError(f"cross-validation needs at least {MIN_RUNS} runs, got {len(unique)}. "
                       "Fix: add runs at other mixtures.")
    k = max(2, min(folds, len(unique)))
    order = np.random.default_rng(seed).permutation(len(unique))
    group_fold = np.empty(len(unique), dtype=int)
    group_fold[order] = np.arange(len(unique)) % k
    return group_fold[inverse]


def fold_weights(ids: np.ndarray) -> np.ndarray:
    """(K, n) training weights: 1 for runs outside fold r, 0 inside."""
    k = int(ids.max()) + 1
    return (ids[None, :] != np.arange(k)[:, None]).astype(float)


def _safe(value: float) -> float:
    return 0.0 if value is None or not math.isfinite(value) else float(value)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    return float(np.clip((x @ y) / np.sqrt((x @ x) * (y @ y)), -1.0, 1.0))


def metrics(actual: np.ndarray, predicted: np.ndarray) -> CVMetrics:
    """Figures of held-out ``predicted`` against ``actual`` (both (n,), lower is better); NaN rows dropped."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    keep = np.isfinite(actual) & np.isfinite(predicted)
    a, p = actual[keep], predicted[keep]
    if len(a) < 2:
        return CVMetrics(0.0, 0.0, float("nan"), float("nan"), 0, float("nan"), int(len(a)))
    constant = np.ptp(p) == 0 or np.ptp(a) == 0
    # Pearson's r of the values and of their average ranks (scipy's spearmanr and pearsonr, less their p-values
    # and checks, which took 1.6 ms a call: a second of a 110-target fit)
    rho = 0.0 if constant else _safe(_pearson(rankdata(p), rankdata(a)))
    r = 0.0 if constant else _safe(_pearson(p, a))
    err = p - a
    pick = int(np.argmin(p))
    rank = int((a < a[pick]).sum()) + 1
    return CVMetrics(rho, r, float(np.abs(err).mean()), float(np.sqrt((err**2).mean())), rank,
                     float(a[pick] - a.min()), int(len(a)))


def cross_validated_predictions(law_cls, options: dict[str, Any], mixtures: np.ndarray, targets: np.ndarray,
                                ids: np.ndarray) -> tuple[np.ndarray, list[list[Any]]]:
    """(n, t) held-out predictions of every target and the fold models ``[fold][target]``."""
    from engine.laws import memo

    models = memo.fit_batch(law_cls, mixtures, targets, fold_weights(ids), options=options)
    predictions = np.full(targets.shape, np.nan)
    for fold, row in enumerate(models):
        inside = ids == fold
        predictions[inside] = memo.predict_targets(law_cls, row, mixtures[inside])
    return predictions, models
