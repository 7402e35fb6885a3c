"""Where a fitted law can be trusted: near the mixtures the runs actually tried.

Distances are total variation, ``0.5 * sum_j |p_j - q_j|`` (the share of the
mixture that would have to move), so a radius reads as "at most 20% of the
tokens allocated differently from some observed run".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist


def tv_distance_to_runs(mixtures: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m,) distance from each mixture to its nearest observed run, and (m,) that run's index."""
    d = 0.5 * cdist(np.atleast_2d(mixtures), observed, metric="cityblock")
    nearest = d.argmin(axis=1)
    return d[np.arange(len(d)), nearest], nearest


def nearest_neighbour_distances(observed: np.ndarray) -> np.ndarray:
    """(n,) each run's distance to its nearest other run."""
    d = 0.5 * cdist(observed, observed, metric="cityblock")
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


@dataclass(frozen=True)
class TrustRegion:
    """Mixtures within ``radius`` (TV) of some observed run; ``radius=inf`` turns the region off."""

    observed: np.ndarray
    radius: float
    rule: str  # how the radius was chosen, shown on the plan

    @classmethod
    def auto(cls, observed: np.ndarray, quantile: float = 0.5, scale: float = 1.0) -> "TrustRegion":
        """Radius = ``scale`` x the ``quantile`` of the runs' nearest-neighbour distances.

        Among the runs themselves that is how far a typical run sits from the next one: a plan
        no further from some run than runs are from each other is an interpolation, not an
        extrapolation.
        """
        if len(observed) < 2:
            return cls(observed, float("inf"), "off (fewer than 2 runs)")
        nn = nearest_neighbour_distances(observed)
        radius = float(scale * np.quantile(nn, quantile))
        return cls(observed, radius,
                   f"TV distance <= {radius:.3f} from some observed run ({scale:g} x the "
                   f"{quantile:.0%} quantile of the runs' nearest-neighbour distances)")

    @classmethod
    def off(cls, observed: np.ndarray) -> "TrustRegion":
        return cls(observed, float("inf"), "off")

    def distance(self, mixtures: np.ndarray) -> np.ndarray:
        if len(self.observed) == 0:
            return np.zeros(len(np.atleast_2d(mixtures)))
        return tv_distance_to_runs(mixtures, self.observed)[0]

    def retract(self, mixtures: np.ndarray) -> np.ndarray:
        """Each mixture outside the region moved straight towards its nearest run onto the region's edge
        (TV distance scales linearly along that segment), so a search can slide along the boundary."""
        mixtures = np.atleast_2d(mixtures)
        if not np.isfinite(self.radius) or len(self.observed) == 0:
            return mixtures
        d, nearest = tv_distance_to_runs(mixtures, self.observed)
        t = np.where(d > self.radius, self.radius * (1 - 1e-9) / np.maximum(d, 1e-300), 1.0)[:, None]
        runs = self.observed[nearest]
        return runs + t * (mixtures - runs)

    def inside(self, mixtures: np.ndarray) -> np.ndarray:
        if not np.isfinite(self.radius):
            return np.ones(len(np.atleast_2d(mixtures)), dtype=bool)
        return self.distance(mixtures) <= self.radius + 1e-12
