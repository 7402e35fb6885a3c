"""Defaults a page opens with, taken from the project: budget, sweep grid, objective.

A newcomer's first view should be an answer, not an error: the budget is one the
project's unique tokens can feed within the epoch cap (or a stated multiple of the
proxy runs' tokens when unique tokens are unknown), and the sweep spans the budgets
between the proxy scale and the most the data can feed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.counts import format_count
from engine.store import session_scope
from engine.store.dataset import load_dataset, proxy_scale_tokens

DEFAULT_MAX_EPOCHS = 4.0  # Muennighoff et al. 2023: up to ~4 epochs are nearly as good as fresh data
FEEDABLE_FRACTION = 0.5  # at the most the data can feed every domain sits at its cap: no choice is left
PROXY_FACTOR = 25.0  # budget = 25 x the proxy runs' tokens when unique tokens are unknown
FALLBACK_BUDGET = 25e9
SWEEP_SPAN_WITHOUT_CAPS = 1000.0  # the sweep reaches this multiple of the proxy scale when nothing caps it


@dataclass(frozen=True)
class ProjectDefaults:
    """What the Plan page opens with; ``budget_reason`` says where the budget comes from, in words."""

    budget_tokens: float
    budget_reason: str
    sweep_low: float
    sweep_high: float
    objective: str
    max_epochs: float
    proxy_tokens: float | None  # tokens of the proxy runs the laws are fitted at
    feedable_tokens: float | None  # the most the domains can feed at the cap (all unique tokens known)
    n_runs: int


def round_budget(value: float) -> float:
    """Two significant digits, rounded down (a default the data can still feed)."""
    if value <= 0 or not math.isfinite(value):
        return value
    scale = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.floor(value / scale + 1e-9) * scale


def defaults_from(unique_tokens: np.ndarray, run_tokens: np.ndarray, targets: list[str], n_runs: int,
                  max_epochs: float = DEFAULT_MAX_EPOCHS) -> ProjectDefaults:
    """The defaults for a project with these domains' unique tokens, runs' tokens and targets."""
    unique = np.asarray(unique_tokens, dtype=float)
    proxy = proxy_scale_tokens(np.asarray(run_tokens, dtype=float))
    proxy = proxy if math.isfinite(proxy) and proxy > 0 else None
    feedable = float(unique.sum() * max_epochs) if unique.size and np.all(np.isfinite(unique)) else None
    if feedable:
        budget = round_budget(FEEDABLE_FRACTION * feedable)
        reason = (f"half of the {format_count(feedable)} tokens the domains' {format_count(unique.sum())} unique "
                  f"tokens can feed at {max_epochs:g} epochs")
        high = feedable
        low = min(proxy, high / 10) if proxy else high / 1000
    elif proxy:
        budget = round_budget(PROXY_FACTOR * proxy)
        reason = f"{PROXY_FACTOR:g} x the proxy runs' {format_count(proxy)} tokens (unique tokens unknown)"
        low, high = proxy, proxy * SWEEP_SPAN_WITHOUT_CAPS
    else:
        budget = FALLBACK_BUDGET
        reason = "no run states its tokens and no domain its unique tokens: a common default"
        low, high = budget / 100, budget * 10
    objective = targets[0] if len(targets) == 1 else "mean"
    return ProjectDefaults(budget, reason, float(low), float(high), objective, max_epochs, proxy, feedable, n_runs)


def project_defaults(project: str, *, max_epochs: float = DEFAULT_MAX_EPOCHS, url: str | None = None) -> ProjectDefaults:
    with session_scope(url) as s:
        dataset = load_dataset(s, project)
    return defaults_from(dataset.unique_tokens, dataset.tokens, list(dataset.targets), dataset.n_runs, max_epochs)
