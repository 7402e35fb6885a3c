"""Objectives (one target, the mean of all, a weighted sum) and the fitted model the planner uses.

An objective is always lower-is-better: a "higher is better" target (accuracy)
enters with a negative weight. A combined objective is predicted by fitting each
target on its own and combining the predictions; on the RegMix runs this beats
fitting the averaged loss directly (issue 4: 5-fold Spearman 0.986 vs 0.953).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.errors import InputError
from engine.laws.base import ReplicaPredictor, as_mixtures
from engine.laws.bootstrap import OffsetReplicas


@dataclass(frozen=True)
class ObjectiveSpec:
    """targets and their weights (sign folded in); ``key`` names it in the store and on screen."""

    key: str
    targets: list[str]
    weights: np.ndarray


def parse_objective(objective: str | dict[str, float] | None, targets: list[str], directions: list[str]) -> ObjectiveSpec:
    """``"mean"``, a target name, ``"a=0.7,b=0.3"`` or ``{"a": 0.7, "b": 0.3}`` -> :class:`ObjectiveSpec`."""
    if not targets:
        raise InputError("the project has no evaluation targets.", hint="upload runs with at least one metric column.")
    sign = {t: (-1.0 if d == "higher" else 1.0) for t, d in zip(targets, directions)}
    objective = "mean" if objective is None or objective == "" else objective
    if isinstance(objective, str) and objective in targets:
        return ObjectiveSpec(objective, [objective], np.array([sign[objective]]))
    if isinstance(objective, str) and objective == "mean":
        return ObjectiveSpec("mean", list(targets), np.array([sign[t] / len(targets) for t in targets]))
    if isinstance(objective, str):
        objective = _parse_weights(objective, targets)
    unknown = [t for t in objective if t not in sign]
    if unknown:
        raise InputError(f"unknown target(s) in the objective: {', '.join(unknown)}.",
                         hint=f"use 'mean', one of {', '.join(targets)}, or 'target=weight,...'.")
    chosen = [t for t in targets if objective.get(t, 0.0) != 0.0]
    if not chosen:
        raise InputError("the weighted objective gives every target weight 0.", hint="give some target a weight.")
    weights = np.array([sign[t] * float(objective[t]) for t in chosen])
    key = "weighted:" + ",".join(f"{t}={float(objective[t]):g}" for t in chosen)
    return ObjectiveSpec(key, chosen, weights)


def _parse_weights(text: str, targets: list[str]) -> dict[str, float]:
    body = text[len("weighted:"):] if text.startswith("weighted:") else text
    if "=" not in body:
        raise InputError(f"unknown objective '{text}'.",
                         hint=f"use 'mean', one of {', '.join(targets)}, or 'target=weight,...'.")
    out = {}
    for part in body.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"the weight of '{name.strip()}' in the objective is not a number: '{value}'.",
                             hint="write weights like 'pile_cc=0.7,arxiv=0.3'.") from None
    return out


class FittedObjective:
    """:class:`engine.laws.base.ObjectiveModel`: per-target laws, combined, with bootstrap replicas."""

    def __init__(self, law: str, smooth: bool, spec: ObjectiveSpec, domains: list[str], laws: list[Any],
                 replicas: list[ReplicaPredictor], *, has_refits: bool = True, interval_scale: float = 1.0) -> None:
        self.law = law
        # False: the replicas are the one model shifted by held-out residuals (conformal), not refits,
        # so they bound a prediction but say nothing about where the optimum could be.
        self.has_refits = has_refits
        # Replicas' deviations from the point prediction are multiplied by this (calibrated on held-out
        # runs so that their 5-95 % band holds 90 % of new runs; see engine.laws.bootstrap).
        self.interval_scale = interval_scale
        self.smooth = smooth
        self.objective = spec.key
        self.targets = list(spec.targets)
        self.weights = np.asarray(spec.weights, dtype=float)
        self.domains = list(domains)
        self.laws = laws
        self.replicas = replicas
        make = getattr(type(laws[0]), "targets_torch", None) if smooth and laws else None
        self._batched = make(laws, replicas) if make is not None else None  # all targets in one call

    def predict_targets(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        p = as_mixtures(mixtures, len(self.domains))
        if self._batched is not None:
            return self._batched.predict(p, replicas=False)[0]
        return np.stack([law.predict(p) for law in self.laws], axis=1)

    def predict(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        return self.predict_targets(mixtures) @ self.weights

    def predict_targets_replicas(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        p = as_mixtures(mixtures, len(self.domains))
        if self._batched is not None:
            return self._batched.predict(p, scale=self.interval_scale)[1]
        return self._replicas_around(p, None)

    def _replicas_around(self, p: np.ndarray, points: np.ndarray | None) -> np.ndarray:
        """(B, m, t) calibrated replicas; ``points`` (m, t): the laws' predictions when already computed.
        Residual-offset replicas are the point plus fixed offsets, so their law is not evaluated again
        (a stack or LightGBM target was predicted three times for one interval)."""
        columns = []
        for i, (law, rep) in enumerate(zip(self.laws, self.replicas)):
            if isinstance(rep, OffsetReplicas):
                point = law.predict(p) if points is None else points[:, i]
                columns.append(point[None] + self.interval_scale * rep.offsets[:, None])
                continue
            if self.interval_scale == 1.0:
                columns.append(rep.predict(p))
                continue
            if hasattr(rep, "predict_with_point"):  # one pass for the point and the refits (GP: one cross-kernel)
                point, reps = rep.predict_with_point(p, law)
            else:
                point, reps = law.predict(p), rep.predict(p)
            columns.append(point[None] + self.interval_scale * (reps - point[None]))
        return np.stack(columns, axis=2)

    def predict_with_replicas(self, mixtures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(m, t) predicted targets and (B, m) the objective from each (calibrated) refit, in one pass:
        what an interval over many candidates needs, without the (B, m, t) array of every target's refits."""
        p = as_mixtures(mixtures, len(self.domains))
        if self._batched is not None:
            return self._batched.predict(p, weights=self.weights, scale=self.interval_scale)
        points = self.predict_targets(p)
        return points, self._replicas_around(p, points) @ self.weights

    # torch paths: the planner differentiates the objective through these (smooth laws only)

    def predict_targets_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        """(m, t) like :meth:`predict_targets`, differentiable in ``mixtures``."""
        self._require_smooth()
        if self._batched is not None:
            return self._batched.predict_torch(mixtures, replicas=False)[0]
        return torch.stack([law.predict_torch(mixtures) for law in self.laws], dim=1)

    def predict_targets_and_replicas_torch(self, mixtures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, t) and (B, m, t) like :meth:`predict_targets` and :meth:`predict_targets_replicas`, differentiable."""
        self._require_smooth()
        if self._batched is not None:
            mean, reps = self._batched.predict_torch(mixtures)
        else:
            mean = torch.stack([law.predict_torch(mixtures) for law in self.laws], dim=1)
            reps = torch.stack([rep.predict_torch(mixtures) for rep in self.replicas], dim=2)
        # a calibrated interval widens the replicas' deviations from the point prediction (fit area, issue 9)
        scale = float(getattr(self, "interval_scale", 1.0))
        return mean, reps if scale == 1.0 else mean[None] + scale * (reps - mean[None])

    def predict_objective_and_replicas_torch(self, mixtures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m,) the objective and (B, m) its calibrated refits, differentiable: what the planner's score needs.
        A GP with a shared kernel sums its targets' refit weights first (B product columns, not t x B)."""
        self._require_smooth()
        if self._batched is not None and self._batched.shared:
            return self._batched.predict_objective_torch(mixtures, self.weights, self.interval_scale)
        mean, reps = self.predict_targets_and_replicas_torch(mixtures)
        weights = torch.as_tensor(self.weights, dtype=mixtures.dtype)
        return mean @ weights, reps @ weights

    def _require_smooth(self) -> None:
        if not self.smooth:
            raise TypeError(f"law '{self.law}' is not smooth: it has no gradient.")
