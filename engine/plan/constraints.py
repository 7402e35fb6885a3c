"""Constraints on a plan, resolved against a project's domains into per-domain bounds.

A user says: lower/upper bounds by domain name, fixed shares, excluded domains
(by name or by tag such as ``license=noncommercial``) and an epoch cap
``p_j * D / U_j <= max_epochs``. :func:`resolve` turns them into ``lo <= p <= hi``
for one budget and raises a :class:`PlanError` naming the constraints that
conflict when no mixture can satisfy them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.errors import InputError, PlanError
from engine.counts import format_count

TOL = 1e-12


@dataclass(frozen=True)
class Constraints:
    """What the user asked for (domain names as the project spells them).

    lower / upper / fixed: {domain: share in [0, 1]}.
    exclude: domain names that get 0.
    exclude_tags: "key=value" (matches tags[key] == value, or value in a tag list)
        or "value" (matches a tag key that is truthy or a value equal to it).
    max_epochs: epoch cap applied to every domain with known unique tokens.
    """

    lower: dict[str, float] = field(default_factory=dict)
    upper: dict[str, float] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    max_epochs: float | None = None

    def __post_init__(self) -> None:
        for label, mapping in (("--min", self.lower), ("--max", self.upper), ("--fix", self.fixed)):
            for name, share in mapping.items():
                if not isinstance(share, (int, float)) or not (0.0 <= float(share) <= 1.0):
                    raise InputError(f"{label} {name}={share}: a share must be a number between 0 and 1.",
                                     hint=f"e.g. {label} {name}=0.1")
        if self.max_epochs is not None and not (float(self.max_epochs) > 0):
            raise InputError(f"--max-epochs {self.max_epochs}: must be a positive number of epochs.",
                             hint="e.g. --max-epochs 4")

    def to_dict(self) -> dict:
        return {"lower": dict(self.lower), "upper": dict(self.upper), "fixed": dict(self.fixed),
                "exclude": list(self.exclude), "exclude_tags": list(self.exclude_tags),
                "max_epochs": self.max_epochs}

    @classmethod
    def from_dict(cls, d: dict) -> "Constraints":
        return cls(lower=dict(d.get("lower") or {}), upper=dict(d.get("upper") or {}),
                   fixed=dict(d.get("fixed") or {}), exclude=tuple(d.get("exclude") or ()),
                   exclude_tags=tuple(d.get("exclude_tags") or ()), max_epochs=d.get("max_epochs"))


@dataclass(frozen=True)
class Bounds:
    """Resolved per-domain bounds for one budget; ``why_lo``/``why_hi`` say which constraint set each."""

    domains: list[str]
    lo: np.ndarray
    hi: np.ndarray
    why_lo: list[str]
    why_hi: list[str]

    def contains(self, mixtures: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        m = np.atleast_2d(mixtures)
        return ((m >= self.lo - tol).all(axis=1) & (m <= self.hi + tol).all(axis=1)
                & (np.abs(m.sum(axis=1) - 1.0) <= tol))

    def project(self, mixtures: np.ndarray) -> np.ndarray:
        return project_box_simplex(mixtures, self.lo, self.hi)


def tag_matches(tags: dict, spec: str) -> bool:
    """Does a domain's tags match ``key=value`` or a bare ``value``?"""
    tags = tags or {}
    if "=" in spec:
        key, value = spec.split("=", 1)
        have = tags.get(key)
        if isinstance(have, (list, tuple)):
            return value in [str(v) for v in have]
        return have is not None and str(have) == value
    for key, value in tags.items():
        if isinstance(value, (list, tuple)) and spec in [str(v) for v in value]:
            return True
        if not isinstance(value, (list, tuple)) and str(value) == spec:
            return True
        if key == spec and value not in (None, False, "", 0):
            return True
    return False


def resolve(
    constraints: Constraints,
    domains: list[str],
    *,
    unique_tokens: np.ndarray,
    budget_tokens: float,
    domain_tags: list[dict] | None = None,
) -> Bounds:
    """Per-domain bounds at ``budget_tokens``; InputError for unknown names, PlanError when infeasible."""
    k = len(domains)
    pos = {name: j for j, name in enumerate(domains)}
    tags = domain_tags if domain_tags and len(domain_tags) == k else [{} for _ in domains]
    lo, hi = np.zeros(k), np.ones(k)
    why_lo, why_hi = [""] * k, [""] * k

    def index(name: str, flag: str) -> int:
        if name not in pos:
            raise InputError(f"{flag} names domain '{name}', which the project does not have.",
                             hint=f"use one of: {', '.join(domains)}.")
        return pos[name]

    for name, share in constraints.lower.items():
        j = index(name, "--min")
        lo[j], why_lo[j] = float(share), f"{name}>={float(share):g} (--min)"
    for name, share in constraints.upper.items():
        j = index(name, "--max")
        hi[j], why_hi[j] = float(share), f"{name}<={float(share):g} (--max)"
    if constraints.max_epochs is not None:
        for j, u in enumerate(np.asarray(unique_tokens, dtype=float)):
            if np.isfinite(u) and u > 0:
                cap = float(constraints.max_epochs) * u / budget_tokens
                if cap < hi[j]:
                    hi[j] = cap
                    why_hi[j] = (f"{domains[j]}<={cap:.3g} ({constraints.max_epochs:g} epochs of "
                                 f"{format_count(u)} unique tokens)")
    for name in constraints.exclude:
        j = index(name, "--exclude")
        hi[j], why_hi[j] = 0.0, f"{name} excluded (--exclude)"
    for spec in constraints.exclude_tags:
        hits = [j for j in range(k) if tag_matches(tags[j], spec)]
        if not hits:
            raise InputError(f"--exclude-tag '{spec}' matches no domain.",
                             hint="check the domains' tags on the Runs page, e.g. license=noncommercial.")
        for j in hits:
            hi[j], why_hi[j] = 0.0, f"{domains[j]} excluded (tag {spec})"
    for name, share in constraints.fixed.items():
        j = index(name, "--fix")
        share = float(share)
        if share > hi[j] + TOL or (hi[j] == 0.0 and share > 0.0):
            raise PlanError(f"--fix {name}={share:g} conflicts with {why_hi[j]}.")
        if share < lo[j] - TOL:
            raise PlanError(f"--fix {name}={share:g} conflicts with {why_lo[j]}.")
        lo[j] = hi[j] = share
        why_lo[j] = why_hi[j] = f"{name}={share:g} (--fix)"
    for j in range(k):
        if lo[j] > hi[j] + TOL or (hi[j] == 0.0 and lo[j] > 0.0):  # an exclusion is exact: no 1e-12 leaks
            raise PlanError(f"{why_lo[j]} conflicts with {why_hi[j]}.")
    hi = np.maximum(hi, lo)
    _check_sums(domains, lo, hi, why_lo, why_hi, budget_tokens)
    return Bounds(list(domains), lo, hi, why_lo, why_hi)


def _check_sums(domains, lo, hi, why_lo, why_hi, budget_tokens) -> None:
    at_budget = f"at {format_count(budget_tokens)} tokens"
    if hi.sum() < 1.0 - 1e-9:
        limited = [why_hi[j] for j in np.argsort(hi) if why_hi[j]]
        free = [domains[j] for j in range(len(domains)) if not why_hi[j]]
        raise PlanError(
            f"the upper bounds {at_budget} allow at most {hi.sum():.3g} in total, less than 1: "
            + "; ".join(limited)
            + (f" (unbounded: {', '.join(free)})" if free else "")
            + ". Fix: raise --max-epochs, lower the budget, drop an exclusion or raise a --max."
        )
    if lo.sum() > 1.0 + 1e-9:
        needed = [why_lo[j] for j in np.argsort(-lo) if why_lo[j]]
        raise PlanError(
            f"the lower bounds and fixed shares need {lo.sum():.3g} in total, more than 1: "
            + "; ".join(needed) + ". Fix: lower a --min or --fix."
        )


def project_box_simplex(mixtures: np.ndarray, lo: np.ndarray, hi: np.ndarray, iters: int = 30) -> np.ndarray:
    """Euclidean projection of rows onto ``{lo <= p <= hi, sum p = 1}`` (bisection on the shift, then exact).

    The projection is ``clip(x - tau, lo, hi)`` with ``tau`` chosen so the row sums to 1; the sum is
    monotone and piecewise linear in ``tau``, so bisection brackets it to ~1e-9 and the last step solves
    for ``tau`` exactly on the shares the bracket leaves free. Rows must come from a feasible box
    (sum lo <= 1 <= sum hi).
    """
    x = np.atleast_2d(np.asarray(mixtures, dtype=float))
    low = (x - hi[None, :]).min(axis=1) - 1.0
    high = (x - lo[None, :]).max(axis=1) + 1.0
    for _ in range(iters):
        mid = 0.5 * (low + high)
        total = np.clip(x - mid[:, None], lo, hi).sum(axis=1)
        too_big = total > 1.0
        low = np.where(too_big, mid, low)
        high = np.where(too_big, high, mid)
    mid = 0.5 * (low + high)
    shifted = x - mid[:, None]
    free = (shifted > lo) & (shifted < hi)
    held = np.where(free, 0.0, np.clip(shifted, lo, hi)).sum(axis=1)
    n_free = free.sum(axis=1)
    tau = np.where(n_free > 0, (np.where(free, x, 0.0).sum(axis=1) - (1.0 - held)) / np.maximum(n_free, 1), mid)
    p = np.clip(x - tau[:, None], lo, hi)
    return _fix_sum(p, lo, hi)


def _fix_sum(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Snap shares within 1e-12 of a bound onto it, then put the last rounding error on the domain with most room.

    Only one domain per row absorbs the error: spreading it would give excluded or zero-share domains
    shares like 1e-17, which a tree law reads as "present" (its split thresholds sit just above 0).
    """
    p = np.where(np.abs(p - lo) <= 1e-12, lo, p)
    p = np.where(np.abs(p - hi) <= 1e-12, hi, p)
    rows = np.arange(len(p))
    for _ in range(3):
        gap = 1.0 - p.sum(axis=1)
        room = np.where(gap[:, None] > 0, hi - p, p - lo)
        j = room.argmax(axis=1)
        p[rows, j] = np.clip(p[rows, j] + gap, lo[j], hi[j])
    return p
