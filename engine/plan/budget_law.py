"""Budget-aware prediction: a mixing law at the proxy scale, moved to a token budget.

For a mixture ``p`` and budget ``D`` (Muennighoff et al. 2023 effective tokens,
or the Goyal et al. 2024 halving, see :mod:`engine.plan.repetition`):

    D'_j  = effective tokens of domain j read for p_j * D tokens
    D'    = sum_j D'_j,          p'_j = D'_j / D'
    y_t(p, D) = f_t(p') + g_t(D') - g_t(D0)

``f_t`` is the fitted mixing law (proxy scale, tokens ``D0``), ``g_t`` the token
law of :mod:`engine.plan.token_law`. A domain read for many epochs contributes
less than its share to ``p'`` (its data has worn out), and the budget is worth
less than ``D`` fresh tokens; with no repetition ``p' = p`` and ``D' = D``, and
the model reduces to the mixing law plus a token power law (DESIGN.md 4).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch

from engine.laws.base import ObjectiveModel
from engine.plan.optimize import Scorer
from engine.plan.repetition import RepetitionLaw, effective_tokens_torch, fit_repetition
from engine.plan.token_law import TokenLaw, fit_token_law
from engine.store.dataset import Dataset


@dataclass
class BudgetAwareModel:
    """An :class:`ObjectiveModel` (proxy scale) plus repetition and token laws.

    unique_tokens: (k,) distinct tokens per domain, NaN where unknown (never repeats).
    model_params: size of the target model, None to stay at the proxies' size.
    """

    base: ObjectiveModel
    unique_tokens: np.ndarray
    repetition: RepetitionLaw
    token_law: TokenLaw
    model_params: float | None = None

    @property
    def domains(self) -> list[str]:
        return list(self.base.domains)

    @property
    def targets(self) -> list[str]:
        return list(self.base.targets)

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.base.weights, dtype=float)

    @property
    def smooth(self) -> bool:
        return bool(self.base.smooth)

    @property
    def law(self) -> str:
        return str(self.base.law)

    def effective(self, mixtures: np.ndarray, budget_tokens: float) -> tuple[np.ndarray, np.ndarray]:
        """Effective mixtures (m, k) and effective tokens (m,) of ``mixtures`` at ``budget_tokens``."""
        mixtures = np.atleast_2d(np.asarray(mixtures, dtype=float))
        worth = self.repetition.effective_tokens(mixtures * budget_tokens, self.unique_tokens)
        total = worth.sum(axis=1)
        return worth / np.maximum(total, 1e-300)[:, None], total

    def epochs(self, mixtures: np.ndarray, budget_tokens: float) -> np.ndarray:
        """(m, k) epochs each domain is read for; NaN where unique tokens are unknown."""
        mixtures = np.atleast_2d(np.asarray(mixtures, dtype=float))
        with np.errstate(divide="ignore", invalid="ignore"):
            return mixtures * budget_tokens / self.unique_tokens[None, :]

    def predict_targets(self, mixtures: np.ndarray, budget_tokens: float) -> np.ndarray:
        p_eff, d_eff = self.effective(mixtures, budget_tokens)
        return self._base_targets(p_eff) + self.token_law.shift(d_eff, budget_tokens, self.model_params)

    def predict(self, mixtures: np.ndarray, budget_tokens: float) -> np.ndarray:
        return self.predict_targets(mixtures, budget_tokens) @ self.weights

    def predict_targets_replicas(self, mixtures: np.ndarray, budget_tokens: float) -> np.ndarray:
        """(B, m, t) per bootstrap refit of the mixing law (the token and repetition laws held fixed)."""
        p_eff, d_eff = self.effective(mixtures, budget_tokens)
        shift = self.token_law.shift(d_eff, budget_tokens, self.model_params)
        return self._base_replicas(p_eff) + shift[None, :, :]

    # Means through the law's numpy path: a batched GP there is the same torch product as its gradient
    # path, in row chunks on a thread per core (the planner scores thousands of candidates at once).
    def _base_targets(self, p_eff: np.ndarray) -> np.ndarray:
        return np.asarray(self.base.predict_targets(p_eff))

    def _base_replicas(self, p_eff: np.ndarray) -> np.ndarray:
        if not self.smooth:
            return np.asarray(self.base.predict_targets_replicas(p_eff))
        with torch.no_grad():
            return self.base.predict_targets_and_replicas_torch(torch.as_tensor(p_eff))[1].numpy()

    def predict_replicas(self, mixtures: np.ndarray, budget_tokens: float) -> np.ndarray:
        """(B, m) objective per bootstrap refit (the token shift is common to all refits)."""
        p_eff, d_eff = self.effective(mixtures, budget_tokens)
        shift = self.token_law.shift(d_eff, budget_tokens, self.model_params) @ self.weights
        return objective_replicas(self.base, p_eff) + shift[None, :]

    @cached_property
    def real_refits(self) -> bool:
        """Do the replicas disagree about the law's shape (bootstrap refits), or only shift one model
        (held-out residual offsets)? The law says so when it can (``has_refits``); otherwise probed."""
        flag = getattr(self.base, "has_refits", None)
        if flag is not None:
            return bool(flag)
        k = len(self.domains)
        probe = np.vstack([np.full(k, 1.0 / k), np.random.default_rng(0).dirichlet(np.ones(k), size=7)])
        reps = np.asarray(self.base.predict_targets_replicas(probe)) @ self.weights  # (B, m)
        if reps.shape[0] < 2:
            return False
        shape = reps - reps.mean(axis=0, keepdims=True)
        return bool(np.ptp(shape, axis=1).max() > 1e-9 * max(1.0, float(np.abs(reps).max())))

    def score_and_grad(self, mixtures: np.ndarray, budget_tokens: float,
                       pessimism: float) -> tuple[np.ndarray, np.ndarray]:
        """(m,) score = objective + pessimism x refit spread, and its (m, k) gradient (smooth laws; autograd).

        The token law depends on the mixture only through the total effective tokens; it enters
        linearised around each row's total (exact value, exact first derivative up to a 1e-4 difference).
        """
        p = torch.tensor(np.atleast_2d(np.asarray(mixtures, dtype=float)), requires_grad=True)
        worth = effective_tokens_torch(p * budget_tokens, torch.as_tensor(self.unique_tokens, dtype=p.dtype),
                                       self.repetition.form, self.repetition.scale)
        total = worth.sum(dim=1)
        p_eff = worth / total.clamp_min(1e-300)[:, None]
        d0 = total.detach().numpy()
        shift0 = self.token_law.shift(d0, budget_tokens, self.model_params)
        slope = (self.token_law.shift(d0 * (1 + 1e-4), budget_tokens, self.model_params) - shift0) / (d0 * 1e-4)[:, None]
        shift = torch.as_tensor(shift0) + torch.as_tensor(slope) * (total - torch.as_tensor(d0))[:, None]
        weights = torch.as_tensor(self.weights, dtype=p.dtype)
        if pessimism > 0:
            mean, reps = objective_and_replicas_torch(self.base, p_eff)
            score = mean + shift @ weights
            if reps.shape[0] > 1:  # the shift is common to all refits
                score = score + pessimism * reps.std(dim=0, unbiased=False)
        else:
            score = (self.base.predict_targets_torch(p_eff) + shift) @ weights
        score.sum().backward()
        return score.detach().numpy(), p.grad.numpy()

    def scorer(self, budget_tokens: float) -> Scorer:
        """What the optimiser needs at ``budget_tokens`` (gradients for smooth laws)."""
        return Scorer(
            mean=lambda m: self.predict(m, budget_tokens),
            replicas=lambda m: self.predict_replicas(m, budget_tokens),
            score_and_grad=(lambda m, pessimism: self.score_and_grad(m, budget_tokens, pessimism))
            if self.smooth else None,
            real_refits=self.real_refits,
        )


def objective_and_replicas_torch(base: ObjectiveModel, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m,) objective and (B, m) its refits from a smooth law, differentiable: the law's own objective path
    where it has one (:meth:`FittedObjective.predict_objective_and_replicas_torch`), else its targets'."""
    direct = getattr(base, "predict_objective_and_replicas_torch", None)
    if direct is not None:
        return direct(p)
    mean, reps = base.predict_targets_and_replicas_torch(p)
    weights = torch.as_tensor(np.asarray(base.weights, dtype=float), dtype=p.dtype)
    return mean @ weights, reps @ weights


def objective_replicas(base: ObjectiveModel, mixtures: np.ndarray) -> np.ndarray:
    """(B, m) the objective of each (calibrated) refit of ``base``, without every target's refits where
    the law has an objective path (the GP with a shared kernel: B product columns instead of t x B).
    Smooth laws through their torch path, the same numbers the planner's gradient steps see."""
    if base.smooth:
        with torch.no_grad():
            return objective_and_replicas_torch(base, torch.as_tensor(np.atleast_2d(mixtures)))[1].numpy()
    if hasattr(base, "predict_with_replicas"):
        return np.asarray(base.predict_with_replicas(mixtures)[1])
    return np.asarray(base.predict_targets_replicas(mixtures)) @ np.asarray(base.weights, dtype=float)


def build_budget_model(
    dataset: Dataset,
    base: ObjectiveModel,
    *,
    repetition_form: str = "muennighoff",
    model_params: float | None = None,
) -> BudgetAwareModel:
    """Wrap ``base`` with repetition and token laws fitted on ``dataset`` where it allows, priors otherwise."""
    columns = [dataset.targets.index(t) for t in base.targets if t in dataset.targets]
    values = dataset.final[:, columns] if columns else np.zeros((dataset.n_runs, 0))
    directions = [dataset.directions[dataset.targets.index(t)] if t in dataset.targets else "lower"
                  for t in base.targets]
    order = [dataset.domains.index(d) for d in base.domains]
    mixtures = dataset.mixtures[:, order]
    unique = dataset.unique_tokens[order]
    repetition = fit_repetition(mixtures, dataset.tokens, unique, values, form=repetition_form)
    target_pos = {dataset.targets.index(t): i for i, t in enumerate(base.targets) if t in dataset.targets}
    keep = np.isin(dataset.curve_target, list(target_pos))
    curve_target = np.array([target_pos[c] for c in dataset.curve_target[keep]], dtype=int)
    final = np.full((dataset.n_runs, len(base.targets)), np.nan)
    for src, dst in target_pos.items():
        final[:, dst] = dataset.final[:, src]
    token_law = fit_token_law(
        directions=directions, mixtures=mixtures, final=final, tokens=dataset.tokens,
        model_params=dataset.model_params, curve_run=dataset.curve_run[keep], curve_target=curve_target,
        curve_tokens=dataset.curve_tokens[keep], curve_value=dataset.curve_value[keep], targets=list(base.targets),
    )
    if model_params is not None and np.isfinite(token_law.proxy_params) and token_law.size_is_prior():
        token_law = replace(token_law, notes=token_law.notes + (
            "model-size term: Chinchilla prior A = 406.4, alpha = 0.34 (Hoffmann et al. 2022), not fitted",))
    return BudgetAwareModel(base, unique, repetition, token_law, model_params)
