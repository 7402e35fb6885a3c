"""How each target moves with (effective) training tokens and model size: the planner's token law.

``g_t(D) = B_t * D ** (-beta_t)``: the data term of the Chinchilla form
(Hoffmann et al. 2022, Eq. 2; Gadre et al. 2024 fit it in the over-trained
regime). The planner only ever uses differences ``g_t(D') - g_t(D0)`` between a
budget and the proxies' tokens, so the constant ``E`` never enters.

Per target, fitted by :mod:`engine.laws.power` (SciPy least squares, convergence checked), first
that the logs allow: the Chinchilla form ``E + A N^-alpha + B D^-beta`` across runs when they hold
two or more model sizes (and budgets); else the token power law on learning curves (one offset per
run); else across runs at several budgets (the mixture's linear effect as covariates). Where none
applies, or a fit does not converge, the Chinchilla prior ``B = 410.7, beta = 0.28`` (Hoffmann et
al. 2022, Approach 3) for lower-is-better targets and no token term for higher-is-better ones;
the source of every target is recorded ("prior" for a prior, never "fitted") and a failed fit's
reason is a note on the plan. The model-size term ``A * N ** (-alpha)`` is the fitted one with the
Chinchilla form, else the prior ``A = 406.4, alpha = 0.34``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from engine.errors import FitError
from engine.laws.power import ChinchillaLaw, TokenPowerLaw
from engine.store.dataset import proxy_scale_tokens

CHINCHILLA_B, CHINCHILLA_BETA = 410.7, 0.28
CHINCHILLA_A, CHINCHILLA_ALPHA = 406.4, 0.34
PRIOR = "prior"
FROM_CURVES, FROM_BUDGETS, FROM_SIZES = "learning curves", "several budgets", "model sizes (Chinchilla form)"
SINGLE_BUDGET_NOTE = (
    "all runs share one token budget: extrapolating to other budgets assumes the ranking of mixtures "
    "holds across scale, as RegMix (Liu et al. 2024) reports for 1M -> 1B parameter models"
)


@dataclass(frozen=True)
class TokenLaw:
    """Per-target token (and model-size) terms, with where each came from.

    coefficient / exponent: (t,) ``B_t`` and ``beta_t`` of the data term.
    source: what most targets were fitted from ("model sizes (Chinchilla form)", "learning curves",
        "several budgets"), or "prior" when no target was fitted.
    proxy_tokens: tokens of the proxy runs the mixture law was fitted at (NaN if unknown).
    proxy_params: parameters of the proxy models (NaN if unknown).
    notes: lines a user reads on the plan.
    size_coefficient / size_exponent: (t,) ``A_t`` and ``alpha_t`` of the model-size term; the
        Chinchilla prior (none for higher-is-better targets) unless fitted.
    target_sources: (t,) the source of each target's terms ("prior" where not fitted).
    """

    coefficient: np.ndarray
    exponent: np.ndarray
    source: str
    proxy_tokens: float = float("nan")
    proxy_params: float = float("nan")
    notes: tuple[str, ...] = field(default_factory=tuple)
    size_coefficient: np.ndarray | None = None
    size_exponent: np.ndarray | None = None
    target_sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        t = len(self.coefficient)
        if self.size_coefficient is None:
            object.__setattr__(self, "size_coefficient", np.where(self.coefficient > 0, CHINCHILLA_A, 0.0))
        if self.size_exponent is None:
            object.__setattr__(self, "size_exponent", np.full(t, CHINCHILLA_ALPHA))
        if not self.target_sources:
            object.__setattr__(self, "target_sources", (self.source,) * t)

    def data_term(self, tokens: np.ndarray) -> np.ndarray:
        """(m, t) ``B_t * D ** -beta_t`` for tokens (m,)."""
        tokens = np.maximum(np.asarray(tokens, dtype=float), 1.0)
        return self.coefficient[None, :] * tokens[:, None] ** (-self.exponent[None, :])

    def shift(self, effective_tokens: np.ndarray, budget_tokens: float, model_params: float | None) -> np.ndarray:
        """(m, t) change of each target from the proxy scale to ``effective_tokens`` (and ``model_params``).

        With the proxies' tokens unknown, the reference is fresh data at the budget itself: only the
        loss from repeated data is added and predictions stay at the proxy scale. The size term
        enters only when both the target size and the proxies' size are known.
        """
        reference = self.proxy_tokens if np.isfinite(self.proxy_tokens) else float(budget_tokens)
        delta = self.data_term(effective_tokens) - self.data_term(np.array([reference]))
        if model_params is not None and np.isfinite(self.proxy_params):
            size = self.size_coefficient * (float(model_params) ** -self.size_exponent
                                            - self.proxy_params ** -self.size_exponent)
            delta = delta + size[None, :]
        return delta

    def size_is_prior(self) -> bool:
        return FROM_SIZES not in self.target_sources

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("coefficient", "exponent", "size_coefficient", "size_exponent"):
            d[key] = [float(v) for v in getattr(self, key)]
        d["notes"] = list(self.notes)
        d["target_sources"] = list(self.target_sources)
        return d


def fit_token_law(
    *,
    directions: list[str],
    mixtures: np.ndarray,
    final: np.ndarray,
    tokens: np.ndarray,
    model_params: np.ndarray,
    curve_run: np.ndarray,
    curve_target: np.ndarray,
    curve_tokens: np.ndarray,
    curve_value: np.ndarray,
    targets: list[str] | None = None,
) -> TokenLaw:
    """Token law for ``t`` targets from the runs' sizes, curves or budgets (first that fits); the prior otherwise."""
    t = len(directions)
    names = targets or [f"target {j + 1}" for j in range(t)]
    tokens = np.asarray(tokens, dtype=float)
    model_params = np.asarray(model_params, dtype=float)
    finite_tokens = tokens[np.isfinite(tokens)]
    proxy_tokens = proxy_scale_tokens(tokens)  # the scale the mixing law was fitted at
    finite_params = model_params[np.isfinite(model_params)]
    proxy_params = float(np.median(finite_params)) if finite_params.size else float("nan")
    lower = np.array([d == "lower" for d in directions])
    coefficient = np.where(lower, CHINCHILLA_B, 0.0)
    exponent = np.full(t, CHINCHILLA_BETA)
    size_coefficient = np.where(lower, CHINCHILLA_A, 0.0)
    size_exponent = np.full(t, CHINCHILLA_ALPHA)
    sources = [PRIOR] * t
    notes: list[str] = []
    several_sizes = np.unique(finite_params).size >= 2
    several_budgets = np.unique(finite_tokens).size >= 2
    for j in range(t):
        sign = 1.0 if lower[j] else -1.0  # the power law falls with scale: fit -accuracy for higher-is-better
        attempts: list[tuple[str, Callable[[], tuple]]] = []
        if several_sizes and several_budgets:
            attempts.append((FROM_SIZES, lambda: _from_sizes(mixtures, sign * final[:, j], tokens, model_params)))
        attempts.append((FROM_CURVES, lambda: _from_curves(curve_run, curve_target, curve_tokens,
                                                           sign * np.asarray(curve_value, dtype=float), j)))
        if several_budgets:
            attempts.append((FROM_BUDGETS, lambda: _from_budgets(mixtures, sign * final[:, j], tokens)))
        failures = []
        for label, attempt in attempts:
            try:
                fitted = attempt()
            except FitError as exc:
                failures.append(f"{label}: {exc}")
                continue
            if fitted is None:
                continue  # too little data of this kind: not a failure
            coefficient[j], exponent[j] = sign * fitted[0], fitted[1]
            if len(fitted) == 4:
                size_coefficient[j], size_exponent[j] = sign * fitted[2], fitted[3]
            sources[j] = label
            break
        if sources[j] == PRIOR and failures:
            notes.append(f"token law of {names[j]}: the fit did not hold, so the Chinchilla prior is used "
                         f"({'; '.join(failures)})")
    fitted_sources = [x for x in sources if x != PRIOR]
    if fitted_sources:
        source = max(dict.fromkeys(fitted_sources), key=fitted_sources.count)
        if len(fitted_sources) < t:
            notes.append(f"token law fitted for {len(fitted_sources)} of {t} targets; Chinchilla prior for the rest")
    else:
        source = PRIOR
        notes.append("token term: Chinchilla prior B = 410.7, beta = 0.28 (Hoffmann et al. 2022), not fitted")
    if finite_tokens.size == 0 or not several_budgets:
        notes.append(SINGLE_BUDGET_NOTE)
    if not np.isfinite(proxy_tokens):
        notes.append("the runs' token counts are unknown: predictions stay at the proxy scale, "
                     "only the loss from repeated data is added")
    return TokenLaw(coefficient, exponent, source, proxy_tokens, proxy_params, tuple(notes),
                    size_coefficient, size_exponent, tuple(sources))


def _from_curves(run, target, tokens, value, j) -> tuple[float, float] | None:
    """``y = E_run + B * D^-beta`` with one offset per run, on the curves' points after warm-up."""
    sel = (target == j) & np.isfinite(value) & (tokens > 0)
    if sel.sum() < 6:
        return None
    r, d, y = run[sel], tokens[sel], value[sel]
    # drop the warm-up part of each curve (first 10% of its tokens), where the power law does not hold yet
    last = np.zeros(r.max() + 1)
    np.maximum.at(last, r, d)
    keep = d >= 0.1 * last[r]
    r, d, y = r[keep], d[keep], y[keep]
    counts = np.bincount(r)
    keep = counts[r] >= 3
    if not keep.any():
        return None
    law = TokenPowerLaw().fit(d[keep], y[keep], groups=r[keep])
    return law.B_, law.beta_


def _from_budgets(mixtures, y, tokens) -> tuple[float, float] | None:
    """``y = c + a . p + B * D^-beta`` across runs at several budgets (no curves)."""
    ok = np.isfinite(y) & np.isfinite(tokens) & (tokens > 0)
    if ok.sum() < mixtures.shape[1] + 4 or np.unique(tokens[ok]).size < 2:
        return None
    law = TokenPowerLaw().fit(tokens[ok], y[ok], covariates=mixtures[ok])
    return law.B_, law.beta_


def _from_sizes(mixtures, y, tokens, model_params) -> tuple[float, float, float, float] | None:
    """``y = c + a . p + A * N^-alpha + B * D^-beta`` across runs of several model sizes and budgets
    (``alpha`` held at the prior with only two sizes)."""
    ok = np.isfinite(y) & np.isfinite(tokens) & (tokens > 0) & np.isfinite(model_params) & (model_params > 0)
    if ok.sum() < mixtures.shape[1] + 6 or np.unique(tokens[ok]).size < 2 or np.unique(model_params[ok]).size < 2:
        return None
    # Two sizes give the size term's scale but not its exponent: the exponent is then the prior's.
    alpha = CHINCHILLA_ALPHA if np.unique(model_params[ok]).size < 3 else None
    law = ChinchillaLaw().fit(model_params[ok], tokens[ok], y[ok], covariates=mixtures[ok], alpha=alpha)
    return law.B_, law.beta_, law.A_, law.alpha_
