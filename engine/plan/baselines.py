"""The mixtures a practitioner would pick without mixplan, to compare a plan against.

* uniform (stratified): equal shares.
* natural: proportional to unique tokens (the corpus as it comes).
* UniMax (Chung et al. 2023, Algorithm 1): spread the budget uniformly over
  domains, smallest first, capping each at ``max_epochs`` of its unique tokens
  and handing what it cannot take to the rest.
* best observed run: the proxy run with the best measured objective.

Each is then projected onto the plan's constraints so every option is compared
under the same rules; ``adjusted`` says when that changed the mixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.plan.constraints import Bounds


@dataclass(frozen=True)
class Baseline:
    name: str
    mixture: np.ndarray  # (k,) after projection onto the constraints
    adjusted: bool  # the raw baseline broke a constraint and was projected
    note: str = ""


def uniform(k: int) -> np.ndarray:
    return np.full(k, 1.0 / k)


def natural(unique_tokens: np.ndarray) -> np.ndarray | None:
    unique = np.asarray(unique_tokens, dtype=float)
    if not np.isfinite(unique).all() or unique.sum() <= 0:
        return None
    return unique / unique.sum()


def unimax(unique_tokens: np.ndarray, budget_tokens: float, max_epochs: float | None) -> np.ndarray | None:
    """Chung et al. 2023, Algorithm 1 (UniMax), in shares of the budget."""
    unique = np.asarray(unique_tokens, dtype=float)
    if not np.isfinite(unique).all():
        return None
    epochs = np.inf if max_epochs is None else float(max_epochs)
    k = len(unique)
    shares = np.zeros(k)
    remaining = 1.0
    order = np.argsort(unique)
    for rank, j in enumerate(order):
        fair = remaining / (k - rank)
        shares[j] = min(fair, epochs * unique[j] / budget_tokens)
        remaining -= shares[j]
    if remaining > 1e-12:  # every domain capped: the budget exceeds what the caps allow
        shares = shares / shares.sum()
    return shares


def best_observed(mixtures: np.ndarray, objective_values: np.ndarray) -> int | None:
    """Index of the run with the lowest measured objective (None when no run has one)."""
    values = np.asarray(objective_values, dtype=float)
    if not np.isfinite(values).any():
        return None
    return int(np.nanargmin(values))


def baselines(
    bounds: Bounds,
    *,
    unique_tokens: np.ndarray,
    budget_tokens: float,
    max_epochs: float | None,
    observed_mixtures: np.ndarray,
    observed_objective: np.ndarray,
    run_names: list[str],
) -> list[Baseline]:
    """Uniform, natural, UniMax and best observed run, each projected onto ``bounds``."""
    k = len(bounds.domains)
    raw: list[tuple[str, np.ndarray | None, str]] = [
        ("uniform", uniform(k), ""),
        ("natural", natural(unique_tokens), ""),
        ("unimax", unimax(unique_tokens, budget_tokens, max_epochs), ""),
    ]
    best = best_observed(observed_mixtures, observed_objective)
    if best is not None:
        raw.append(("best observed run", observed_mixtures[best],
                    f"run {run_names[best]}: measured objective {observed_objective[best]:.4g} at the proxy scale"))
    out = []
    for name, mixture, note in raw:
        if mixture is None:
            continue
        inside = bool(bounds.contains(mixture)[0])
        projected = mixture if inside else bounds.project(mixture)[0]
        out.append(Baseline(name, projected, not inside, note))
    return out
