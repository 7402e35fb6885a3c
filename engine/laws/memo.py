"""Fits shared between laws within one ``fit_project``: the stack reuses the GP's and LightGBM's own fits.

The stack law blends a GP and a LightGBM fitted on the same folds and the same runs as those laws'
own fits in the same project fit, so refitting them doubled its cost. Inside :func:`sharing_fits`,
:func:`fit_batch` and :func:`choose_options` return the result of an earlier call with equal
arguments (same law, options, and array contents) instead of fitting again, and
:func:`predict_targets` returns an earlier prediction of the same fitted laws. Outside it they call
straight through, so a law used alone behaves as before.

Fitted laws are never modified after their fit, so sharing the objects is safe. The cache lives in
a context variable: each job thread of the dashboard has its own, and it is dropped at the block's end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

_CACHE: ContextVar[dict[tuple, Any] | None] = ContextVar("mixplan_shared_fits", default=None)


@contextmanager
def sharing_fits() -> Iterator[None]:
    """Within the block, equal fit_batch / choose_options calls are computed once."""
    token = _CACHE.set({})
    try:
        yield
    finally:
        _CACHE.reset(token)


def _fingerprint(array: np.ndarray) -> tuple:
    array = np.ascontiguousarray(array, dtype=float)
    return array.shape, hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest()


def _key(kind: str, law_cls: type, options: dict[str, Any] | None, *arrays: np.ndarray) -> tuple:
    text = json.dumps(options or {}, sort_keys=True, default=str)
    return (kind, law_cls.name, text, *(_fingerprint(a) for a in arrays))


def _cached(key: tuple, compute):
    cache = _CACHE.get()
    if cache is None:
        return compute()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def fit_batch(law_cls, mixtures: np.ndarray, targets: np.ndarray, weights: np.ndarray, *,
              options: dict[str, Any] | None = None) -> list[list[Any]]:
    """``law_cls.fit_batch(...)``, shared within :func:`sharing_fits`."""
    key = _key("fit_batch", law_cls, options, mixtures, targets, weights)
    return _cached(key, lambda: law_cls.fit_batch(mixtures, targets, weights, options=options))


def predict_targets(law_cls, laws: list[Any], mixtures: np.ndarray) -> np.ndarray:
    """``law_cls.predict_targets(laws, mixtures)``, shared within :func:`sharing_fits`: the stack's CV
    predicts the held-out runs of the GP's and LightGBM's fold fits, which those laws' own CV predicted.
    The key holds the laws' identities; the cached entry keeps the laws alive, so no identity is reused."""
    key = ("predict_targets", law_cls.name, tuple(id(law) for law in laws), _fingerprint(mixtures))
    return _cached(key, lambda: (laws, law_cls.predict_targets(laws, mixtures)))[1]


def choose_options(law_cls, mixtures: np.ndarray, targets: np.ndarray, ids: np.ndarray,
                   options: dict[str, Any]) -> dict[str, Any]:
    """``law_cls.choose_options(...)``, shared within :func:`sharing_fits` (a copy: callers may extend it)."""
    key = _key("choose_options", law_cls, options, mixtures, targets, ids)
    return dict(_cached(key, lambda: law_cls.choose_options(mixtures, targets, ids, options)))
