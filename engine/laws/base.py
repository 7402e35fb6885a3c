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

import base64
from contextlib import contextmanager
from typing import Any, ClassVar, Iterator, Protocol, runtime_checkable

import numpy as np
import torch


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


# ---------------------------------------------------------------------------
# Shared machinery of the concrete laws (added by the laws area).
# ---------------------------------------------------------------------------


class ReplicaPredictor(Protocol):
    """Predictions of B bootstrap refits of one law for one target."""

    def predict(self, mixtures: np.ndarray) -> np.ndarray: ...  # (B, m)

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor: ...  # (B, m), smooth laws only


def check_batch_input(law: str, mixtures, targets, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrays for a batched fit (weight rows x targets) and the mask of observed values.

    Every (row, target) problem must pass :func:`check_fit_input`; the conditions are evaluated for all
    problems at once (100 refits x 110 targets one by one took seconds) and a failing problem is
    handed to :func:`check_fit_input`, which raises with its message."""
    mixtures = np.asarray(mixtures, dtype=float)
    targets = np.asarray(targets, dtype=float)
    weights = np.asarray(weights, dtype=float)
    observed = np.isfinite(targets)
    if mixtures.ndim != 2 or targets.ndim != 2 or weights.ndim != 2 or not (
            len(mixtures) == len(targets) == weights.shape[1]):
        from engine.errors import FitError

        raise FitError(f"{law}: mixtures {mixtures.shape}, targets {targets.shape} and weights {weights.shape} "
                         "do not describe the same runs.")
    y = np.where(observed, targets, 0.0).T  # (t, n)
    patterns, which = np.unique(observed.T, axis=0, return_inverse=True)  # targets measured on the same runs
    which = which.reshape(-1)
    finite_rows = np.isfinite(mixtures).all(1)
    bad = np.zeros((len(weights), targets.shape[1]), dtype=bool)
    for r, support in enumerate(weights > 0):
        used = support[None] & observed.T  # (t, n)
        top = np.where(used, y, -np.inf).max(1)
        bottom = np.where(used, y, np.inf).min(1)
        scale = np.maximum(1.0, np.maximum(np.abs(top), np.abs(bottom)))
        bad[r] = (used.sum(1) < 2) | ~(top - bottom > 1e-12 * scale)
        for j, pattern in enumerate(patterns):
            rows = support & pattern
            flat = rows.sum() < 2 or np.ptp(mixtures[rows], axis=0).max() <= 1e-12
            bad[r, which == j] |= flat or not finite_rows[rows].all()
    for r, i in zip(*np.nonzero(bad)):
        check_fit_input(law, mixtures, np.where(observed[:, i], targets[:, i], 0.0), weights[r] * observed[:, i])
    return mixtures, targets, weights, observed


def check_fit_input(law: str, mixtures: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Raise :class:`FitError` (naming the law and why) on input no law can be fitted on.

    Degenerate input: fewer than 2 runs, all runs at the same mixture, a constant
    target, or non-finite values. Laws never return NaN parameters instead.
    """
    from engine.errors import FitError

    mixtures = np.asarray(mixtures, dtype=float)
    y = np.asarray(y, dtype=float)
    if mixtures.ndim != 2 or y.ndim != 1 or len(mixtures) != len(y):
        raise FitError(f"{law}: expected mixtures (n, k) and one target (n,), got {mixtures.shape} and {y.shape}.")
    used = np.ones(len(y), dtype=bool) if weights is None else np.asarray(weights) > 0
    if used.sum() < 2:
        raise FitError(f"{law}: needs at least 2 runs with a measured value, got {int(used.sum())}. "
                       "Fix: add runs (a mixing law needs several mixtures).")
    if not (np.isfinite(mixtures[used]).all() and np.isfinite(y[used]).all()):
        raise FitError(f"{law}: the mixtures or the target hold NaN or infinite values.")
    if np.ptp(mixtures[used], axis=0).max() <= 1e-12:
        raise FitError(f"{law}: every run has the same mixture, so nothing tells how the target moves with it. "
                       "Fix: add runs at other mixtures.")
    if np.ptp(y[used]) <= 1e-12 * max(1.0, float(np.abs(y[used]).max())):
        raise FitError(f"{law}: the target has the same value in every run; there is nothing to fit.")


class ParamReplicas:
    """Default :class:`ReplicaPredictor`: a list of laws rebuilt from their params."""

    def __init__(self, laws: list[Any]) -> None:
        self.laws = laws

    def predict(self, mixtures: np.ndarray) -> np.ndarray:
        return np.stack([law.predict(mixtures) for law in self.laws])

    def predict_torch(self, mixtures: torch.Tensor) -> torch.Tensor:
        return torch.stack([law.predict_torch(mixtures) for law in self.laws])


def pack_array(values: np.ndarray) -> dict[str, Any]:
    """A float64 array as JSON: base64 of its bytes and its shape (bit for bit; a list of 700,000 floats
    took seconds to store and to read back, this takes milliseconds)."""
    values = np.ascontiguousarray(values, dtype="<f8")
    return {"f64": base64.b64encode(values.tobytes()).decode("ascii"), "shape": list(values.shape)}


def unpack_array(packed: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(packed["f64"]), dtype="<f8").reshape(packed["shape"]).copy()


class LawBase:
    """Batch fitting, replica storage and input checks shared by the concrete laws.

    ``fit_batch`` fits one problem per (weight vector, target): cross-validation folds
    are 0/1 weights, bootstrap resamples are integer counts. Laws override it with a
    vectorised solver; this default loops over :meth:`fit` on the repeated rows.
    """

    name: ClassVar[str]
    smooth: ClassVar[bool]
    # False: intervals come from held-out CV residuals instead of bootstrap refits (trees: refits too slow),
    # so the replicas are shifts of one model and say nothing about where its optimum could be.
    has_refits: ClassVar[bool] = True

    def fit(self, mixtures, y, *, tokens=None, model_params=None):  # pragma: no cover - every law overrides
        raise NotImplementedError

    def check_fitted(self) -> None:
        """Raise :class:`FitError` when the law has learned nothing yet (what fitting learns ends with ``_``)."""
        from engine.errors import FitError

        if not any(key.endswith("_") and not key.startswith("_") for key in vars(self)):
            raise FitError(f"{self.name}: predict was called before fit. "
                           "Fix: call fit(mixtures, y) first, or rebuild a fitted law with from_params(params).")

    @classmethod
    def fit_batch(cls, mixtures: np.ndarray, targets: np.ndarray, weights: np.ndarray, *,
                  options: dict[str, Any] | None = None) -> list[list[Any]]:
        """Fitted laws ``[r][i]`` for weight row r (R, n) and target column i of ``targets`` (n, t)."""
        out = []
        for w in np.asarray(weights):
            counts = np.round(w).astype(int)
            rows = np.repeat(np.arange(len(w)), counts)
            fitted = []
            for i in range(targets.shape[1]):
                keep = rows[np.isfinite(targets[rows, i])]
                fitted.append(cls(**(options or {})).fit(mixtures[keep], targets[keep, i]))
            out.append(fitted)
        return out

    @classmethod
    def predict_targets(cls, laws: list[Any], mixtures: np.ndarray) -> np.ndarray:
        """(m, t): each of ``laws`` (one a target, fitted on the same runs) at ``mixtures``. Laws whose
        targets share work (the GP's cross-kernel) override it."""
        return np.stack([law.predict(mixtures) for law in laws], axis=1).reshape(len(mixtures), len(laws))

    @classmethod
    def choose_options(cls, mixtures: np.ndarray, targets: np.ndarray, ids: np.ndarray,
                       options: dict[str, Any]) -> dict[str, Any]:
        """Options resolved by cross-validation on the folds ``ids`` before the fit (default: as given)."""
        return options

    @classmethod
    def cross_validate(cls, mixtures: np.ndarray, targets: np.ndarray, ids: np.ndarray,
                       options: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
        """Options resolved by :meth:`choose_options` and the held-out predictions (n, t) on the folds ``ids``."""
        from engine.laws import memo
        from engine.laws.cv import cross_validated_predictions

        options = memo.choose_options(cls, mixtures, targets, ids, options)
        return options, cross_validated_predictions(cls, options, mixtures, targets, ids)[0]

    @classmethod
    def fit_refits(cls, mixtures: np.ndarray, targets: np.ndarray, counts: np.ndarray, full: list[Any], *,
                   options: dict[str, Any] | None = None) -> list[list[Any]]:
        """Bootstrap refits ``[b][i]``; ``full`` (the fit on all runs, one law a target) may seed them."""
        return cls.fit_batch(mixtures, targets, counts, options=options)

    @classmethod
    def pack_targets(cls, laws: list[Any]) -> Any:
        """JSON-able form of the fits of every target on all runs (laws may store shared parts once)."""
        return [law.params for law in laws]

    @classmethod
    def unpack_targets(cls, packed: Any) -> list[Any]:
        return [cls.from_params(p) for p in packed]

    @classmethod
    def pack_replicas(cls, laws: list[Any]) -> dict[str, Any]:
        """JSON-able form of B bootstrap refits of one target."""
        return {"params": [law.params for law in laws]}

    @classmethod
    def unpack_replicas(cls, packed: dict[str, Any], full: Any = None) -> ReplicaPredictor:
        """The refits of one target; ``full`` is that target's fit on all runs (laws may build on it)."""
        return ParamReplicas([cls.from_params(p) for p in packed["params"]])


def as_mixtures(mixtures: np.ndarray, k: int | None = None) -> np.ndarray:
    """(m, k) float array; a single mixture (k,) becomes one row. Shape errors name what was expected."""
    from engine.errors import InputError

    arr = np.asarray(mixtures, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or (k is not None and arr.shape[1] != k):
        raise InputError(f"expected mixtures with {k if k is not None else 'k'} domain shares per row, got shape {arr.shape}.")
    return arr


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run batched small solves on one intra-op thread (restored after).

    Kernel matrices of a few hundred runs gain nothing from torch's intra-op threads and lose
    ~10x to their contention: measured on the 2-core machine, one GP hyperparameter fit on the
    RegMix runs (13 targets) took 61 s with 2 threads and 6 s with 1.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
