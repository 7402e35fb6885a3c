"""How each target moves with (effective) training tokens and model size.

``g_t(D) = B_t * D ** (-beta_t)``: the data term of the Chinchilla form
(Hoffmann et al. 2022, Eq. 2; Gadre et al. 2024 fit it in the over-trained
regime). The planner only ever uses differences ``g_t(D') - g_t(D0)`` between a
budget and the proxies' tokens, so the constant ``E`` never enters.

Fitted from learning curves (one offset per run, ``B_t`` and ``beta_t`` shared
per target) or from runs at several budgets; otherwise the Chinchilla prior
``B = 410.7, beta = 0.28`` (Hoffmann et al. 2022, Approach 3) for lower-is-better
targets and no token term for higher-is-better ones, and the plan says so.
The model-size term ``A * N ** (-alpha)`` uses the Chinchilla prior
``A = 406.4, alpha = 0.34`` when both the target size and the proxies' size are known.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from engine.store.dataset import proxy_scale_tokens

CHINCHILLA_B, CHINCHILLA_BETA = 410.7, 0.28
CHINCHILLA_A, CHINCHILLA_ALPHA = 406.4, 0.34
_BETA_GRID = np.linspace(0.05, 1.0, 39)
SINGLE_BUDGET_NOTE = (
    "all runs share one token budget: extrapolating to other budgets assumes the ranking of mixtures "
    "holds across scale, as RegMix (Liu et al. 2024) reports for 1M -> 1B parameter models"
)


@dataclass(frozen=True)
class TokenLaw:
    """Per-target token exponent and scale, with where they came from.

    coefficient / exponent: (t,) ``B_t`` and ``beta_t``.
    source: "learning curves", "several budgets" or "prior".
    proxy_tokens: tokens of the proxy runs the mixture law was fitted at (NaN if unknown).
    proxy_params: parameters of the proxy models (NaN if unknown).
    notes: lines a user reads on the plan.
    """

    coefficient: np.ndarray
    exponent: np.ndarray
    source: str
    proxy_tokens: float = float("nan")
    proxy_params: float = float("nan")
    notes: tuple[str, ...] = field(default_factory=tuple)

    def data_term(self, tokens: np.ndarray) -> np.ndarray:
        """(m, t) ``B_t * D ** -beta_t`` for tokens (m,)."""
        tokens = np.maximum(np.asarray(tokens, dtype=float), 1.0)
        return self.coefficient[None, :] * tokens[:, None] ** (-self.exponent[None, :])

    def shift(self, effective_tokens: np.ndarray, budget_tokens: float, model_params: float | None) -> np.ndarray:
        """(m, t) change of each target from the proxy scale to ``effective_tokens`` (and ``model_params``).

        With the proxies' tokens unknown, the reference is fresh data at the budget itself: only the
        loss from repeated data is added and predictions stay at the proxy scale.
        """
        reference = self.proxy_tokens if np.isfinite(self.proxy_tokens) else float(budget_tokens)
        delta = self.data_term(effective_tokens) - self.data_term(np.array([reference]))
        if model_params is not None and np.isfinite(self.proxy_params) and self.source == "prior":
            size = CHINCHILLA_A * (model_params ** -CHINCHILLA_ALPHA - self.proxy_params ** -CHINCHILLA_ALPHA)
            delta = delta + np.where(self.coefficient > 0, size, 0.0)[None, :]
        return delta

    def to_dict(self) -> dict:
        d = asdict(self)
        d["coefficient"] = [float(v) for v in self.coefficient]
        d["exponent"] = [float(v) for v in self.exponent]
        d["notes"] = list(self.notes)
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
) -> TokenLaw:
    """Token law for ``t`` targets from the runs' curves or budgets; the prior otherwise."""
    t = len(directions)
    finite_tokens = np.asarray(tokens, dtype=float)[np.isfinite(tokens)]
    proxy_tokens = proxy_scale_tokens(tokens)  # the scale the mixing law was fitted at
    finite_params = np.asarray(model_params, dtype=float)[np.isfinite(model_params)]
    proxy_params = float(np.median(finite_params)) if finite_params.size else float("nan")
    coefficient = np.array([CHINCHILLA_B if d == "lower" else 0.0 for d in directions])
    exponent = np.full(t, CHINCHILLA_BETA)
    fitted_from: list[str] = []
    for j in range(t):
        fit = _fit_from_curves(curve_run, curve_target, curve_tokens, curve_value, j)
        source = "learning curves"
        if fit is None:
            fit = _fit_from_budgets(mixtures, final[:, j], tokens)
            source = "several budgets"
        if fit is not None:
            coefficient[j], exponent[j] = fit
            fitted_from.append(source)
    notes: list[str] = []
    if fitted_from:
        source = max(set(fitted_from), key=fitted_from.count)
        if len(fitted_from) < t:
            notes.append(f"token exponent fitted for {len(fitted_from)} of {t} targets; Chinchilla prior for the rest")
    else:
        source = "prior"
        notes.append("token term: Chinchilla prior B = 410.7, beta = 0.28 (Hoffmann et al. 2022), not fitted")
    if finite_tokens.size == 0 or np.unique(finite_tokens).size == 1:
        notes.append(SINGLE_BUDGET_NOTE)
    if not np.isfinite(proxy_tokens):
        notes.append("the runs' token counts are unknown: predictions stay at the proxy scale, "
                     "only the loss from repeated data is added")
    return TokenLaw(coefficient, exponent, source, proxy_tokens, proxy_params, tuple(notes))


def _fit_from_curves(run, target, tokens, value, j) -> tuple[float, float] | None:
    """``y = E_run + B * D^-beta`` with one offset per run: grid over beta, B in closed form."""
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
    if (counts >= 3).sum() < 1:
        return None
    keep = counts[r] >= 3
    r, d, y = r[keep], d[keep], y[keep]
    return _grid_beta(lambda beta: (d ** -beta, y, r))


def _fit_from_budgets(mixtures, y, tokens) -> tuple[float, float] | None:
    """``y = c + a . p + B * D^-beta`` across runs at several budgets (no curves)."""
    ok = np.isfinite(y) & np.isfinite(tokens) & (tokens > 0)
    if ok.sum() < mixtures.shape[1] + 4 or np.unique(tokens[ok]).size < 2:
        return None
    p, yy, dd = mixtures[ok], y[ok], tokens[ok]
    best = None
    for beta in _BETA_GRID:
        design = np.column_stack([p, dd ** -beta])
        coef, *_ = np.linalg.lstsq(design, yy, rcond=None)
        sse = float(((design @ coef - yy) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, float(coef[-1]), float(beta))
    return best[1], best[2]


def _grid_beta(make) -> tuple[float, float]:
    best = None
    for beta in _BETA_GRID:
        x, y, groups = make(beta)
        n_groups = groups.max() + 1
        cnt = np.maximum(np.bincount(groups, minlength=n_groups), 1)
        xc = x - (np.bincount(groups, x, n_groups) / cnt)[groups]
        yc = y - (np.bincount(groups, y, n_groups) / cnt)[groups]
        denom = float((xc * xc).sum())
        if denom <= 0:
            continue
        coef = float((xc * yc).sum()) / denom
        sse = float(((yc - coef * xc) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, coef, float(beta))
    if best is None:
        return CHINCHILLA_B, CHINCHILLA_BETA
    return best[1], best[2]
