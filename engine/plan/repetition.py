"""What repeated data is worth: effective tokens under repetition.

Two forms, both mapping the tokens a domain is read for (``p_j * D``) and its
unique tokens ``U_j`` to the fresh tokens they are worth:

* ``muennighoff`` -- Muennighoff et al. 2023, "Scaling Data-Constrained
  Language Models", Eq. 5: with ``R_j = max(0, p_j*D/U_j - 1)`` repeated epochs,
  ``D'_j = min(p_j*D, U_j) + U_j * R* * (1 - exp(-R_j / R*))``. Their fit gives
  ``R* ~ 15.4``, our prior.
* ``goyal`` -- Goyal et al. 2024, "Scaling Laws for Data Filtering": a pool's
  utility halves every ``tau`` repetitions, so the k-th epoch of a domain is
  worth ``0.5 ** ((k - 1) / tau)`` of fresh tokens. We read it in tokens,
  piecewise over epochs: ``D'_j = U_j * (sum over whole epochs of that factor
  + the fraction of the last epoch times its factor)``. Its smooth limit equals
  the Muennighoff form with ``R* = tau / ln 2``; the prior ``tau = 15.4 * ln 2``
  makes the two priors agree, so a user switching forms sees the shape change,
  not the scale.

Domains with unknown unique tokens (NaN) never repeat.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from engine.errors import InputError

log = logging.getLogger(__name__)

MUENNIGHOFF_R_STAR = 15.4  # Muennighoff et al. 2023, fitted R*_D
FORMS = ("muennighoff", "goyal")


@dataclass(frozen=True)
class RepetitionLaw:
    """How fast repeated epochs lose value.

    form: "muennighoff" or "goyal".
    scale: R* for muennighoff, tau (repetitions per halving) for goyal.
    source: "prior" (published value) or "fitted".
    note: one line a user reads on the plan (what the value rests on).
    """

    form: str = "muennighoff"
    scale: float = MUENNIGHOFF_R_STAR
    source: str = "prior"
    note: str = "prior: R* = 15.4 from Muennighoff et al. 2023 (no repeated data in the runs)"

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise InputError(f"repetition form '{self.form}' is unknown.", hint=f"use one of: {', '.join(FORMS)}.")
        if not (self.scale > 0):
            raise InputError(f"repetition scale must be positive, got {self.scale}.")

    @classmethod
    def prior(cls, form: str = "muennighoff") -> "RepetitionLaw":
        if form == "goyal":
            tau = MUENNIGHOFF_R_STAR * np.log(2.0)
            return cls("goyal", float(tau), "prior",
                       f"prior: utility halves every tau = {tau:.1f} repetitions (R* = 15.4 of Muennighoff et al. "
                       "2023 read as Goyal et al. 2024's halving; no repeated data in the runs)")
        return cls()

    def to_dict(self) -> dict:
        return asdict(self)

    def effective_tokens(self, tokens: np.ndarray, unique_tokens: np.ndarray) -> np.ndarray:
        """Fresh-token worth of ``tokens`` (..., k) read from domains of ``unique_tokens`` (k,)."""
        return effective_tokens(tokens, unique_tokens, self.form, self.scale)


def effective_tokens(tokens: np.ndarray, unique_tokens: np.ndarray, form: str, scale: float) -> np.ndarray:
    tokens = np.asarray(tokens, dtype=float)
    unique = torch.as_tensor(np.asarray(unique_tokens, dtype=float))
    return effective_tokens_torch(torch.as_tensor(tokens), unique, form, scale).numpy()


def effective_tokens_torch(tokens: torch.Tensor, unique_tokens: torch.Tensor, form: str, scale: float) -> torch.Tensor:
    """:func:`effective_tokens` on tensors, differentiable in ``tokens`` (the planner's gradients)."""
    unique = torch.broadcast_to(unique_tokens.to(tokens.dtype), tokens.shape)
    known = torch.isfinite(unique) & (unique > 0)
    safe_u = torch.where(known, unique, torch.ones_like(unique))
    epochs = tokens.clamp_min(0.0) / safe_u
    if form == "muennighoff":
        repeats = (epochs - 1.0).clamp_min(0.0)
        worth = epochs.clamp_max(1.0) + scale * (1.0 - torch.exp(-repeats / scale))
    else:
        whole = torch.floor(epochs).detach()
        ratio = 0.5 ** (1.0 / scale)
        # sum_{k=1..whole} ratio^(k-1) = (1 - ratio^whole) / (1 - ratio)
        worth = (1.0 - ratio ** whole) / (1.0 - ratio) + (epochs - whole) * ratio ** whole
    return torch.where(known, worth * safe_u, tokens)


def repeated_runs(mixtures: np.ndarray, tokens: np.ndarray, unique_tokens: np.ndarray) -> np.ndarray:
    """(n,) True for runs that read some domain for more than one epoch."""
    unique = np.asarray(unique_tokens, dtype=float)
    read = np.asarray(mixtures, dtype=float) * np.asarray(tokens, dtype=float)[:, None]
    with np.errstate(invalid="ignore"):
        over = np.where(np.isfinite(unique) & np.isfinite(read), read > unique * (1 + 1e-9), False)
    return over.any(axis=1)


def fit_repetition(
    mixtures: np.ndarray,
    tokens: np.ndarray,
    unique_tokens: np.ndarray,
    values: np.ndarray,
    *,
    form: str = "muennighoff",
    min_repeated_runs: int = 5,
) -> RepetitionLaw:
    """Fit the repetition scale when the runs hold repeated data; otherwise the published prior.

    Profile least squares over a grid of scales: for each scale, the runs'
    effective mixtures ``p'`` and effective tokens ``D'`` enter a linear model
    ``y_t = c_t + a_t . p' + b_t log D'`` per target (standardised), and the
    scale with the smallest residual wins. A linear surrogate keeps this cheap;
    it only has to rank scales, not predict.
    """
    prior = RepetitionLaw.prior(form)
    tokens = np.asarray(tokens, dtype=float)
    usable = np.isfinite(tokens) & (tokens > 0)
    if usable.sum() == 0:
        return prior
    mixtures, tokens, values = np.asarray(mixtures)[usable], tokens[usable], np.asarray(values, dtype=float)[usable]
    n_repeated = int(repeated_runs(mixtures, tokens, unique_tokens).sum())
    if n_repeated < min_repeated_runs:
        return prior
    finite_cols = np.isfinite(values).all(axis=0)
    if not finite_cols.any():
        return prior
    y = values[:, finite_cols]
    y = (y - y.mean(axis=0)) / np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
    grid = np.geomspace(0.25, 200.0, 33)
    if form == "goyal":
        grid = grid * np.log(2.0)
    sse = np.array([_surrogate_sse(mixtures, tokens, unique_tokens, y, form, s) for s in grid])
    at = int(np.argmin(sse))
    best = float(grid[at])
    name = "R*" if form == "muennighoff" else "tau"
    if at in (0, len(grid) - 1):
        # The best scale is the grid's end: the data only say "this far or beyond", not a value. Calling it
        # fitted would plan on an arbitrary bound; the published prior is the honest answer.
        log.info("repetition %s: best %s at the grid edge (%.3g); using the prior", form, name, best)
        return RepetitionLaw(prior.form, prior.scale, "prior",
                             f"{prior.note.split(' (')[0]}: the {n_repeated} runs that repeat data put {name} at the "
                             f"edge of the searched range ({grid[0]:.2g}..{grid[-1]:.3g}), so it could not be fitted")
    log.info("repetition %s fitted: %s=%.3g on %d repeated runs", form, name, best, n_repeated)
    return RepetitionLaw(form, best, "fitted",
                         f"fitted: {name} = {best:.3g} from {n_repeated} runs that repeat data "
                         f"(grid {grid[0]:.2g}..{grid[-1]:.3g})")


def _surrogate_sse(mixtures, tokens, unique_tokens, y, form, scale) -> float:
    eff = effective_tokens(mixtures * tokens[:, None], unique_tokens, form, scale)
    total = eff.sum(axis=1)
    features = np.column_stack([eff / total[:, None], np.log(total)])
    design = np.column_stack([np.ones(len(y)), features])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(((design @ coef - y) ** 2).sum())
