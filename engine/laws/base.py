"""The shared interface of every law (scikit-learn-like, plus params/from_params).

Two levels:

* :class:`MixtureLaw` predicts ONE evaluation target from the mixture (and,
  for laws that use them, tokens and model size). Constructor stores options
  only; ``fit`` returns self; learned things end with ``_``; ``params`` is a
  plain JSON-able dict and ``from_params(params)`` rebuilds a law whose
  predictions are identical.
* :class:`ObjectiveModel` is what the planner and the pages consume: per-target
  fitted laws combined into one objective (lower is better; a "higher is
  better" target enters with a negative weight), plus bootstrap replicas for
  intervals.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class MixtureLaw(Protocol):
    name: ClassVar[str]
    smooth: ClassVar[bool]  # differentiable and extrapolates (not a tree): the planner may use gradients

    def fit(
        self,
        mixtures: np.ndarray,  # (n, k) shares, rows on the simplex
        y: np.ndarray,  # (n,) one target
        *,
        tokens: np.ndarray | None = None,  # (n,) tokens of each run, where the law uses them
        model_params: np.ndarray | None = None,  # (n,)
    ) -> "MixtureLaw": ...

    def predict(
        self,
        mixtures: np.ndarray,  # (m, k)
        *,
        tokens: np.ndarray | None = None,
        model_params: np.ndarray | None = None,
    ) -> np.ndarray: ...  # (m,)

    @property
    def params(self) -> dict[str, Any]: ...

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "MixtureLaw": ...


@runtime_checkable
class ObjectiveModel(Protocol):
    """Fitted per-target laws for one objective, with bootstrap replicas.

    targets / weights: the targets the objective combines and their weights
    (sign folded in, so the objective is always lower-is-better).
    """

    law: str
    targets: list[str]
    weights: np.ndarray  # (t,)
    domains: list[str]
    smooth: bool

    def predict_targets(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        """(m, t) predicted value of each target (in the target's own units)."""

    def predict(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        """(m,) objective = predict_targets @ weights (lower is better)."""

    def predict_targets_replicas(self, mixtures: np.ndarray, *, tokens: np.ndarray | None = None) -> np.ndarray:
        """(B, m, t) the same from each of B bootstrap refits (B >= 1)."""
