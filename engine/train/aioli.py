"""Aioli online data mixing (Chen et al. 2024, "Aioli: A Unified Optimization
Framework for Language Model Data Mixing", Algorithm 1 and 2).

The linear dynamic mixing law says that training one round on mixture ``p^t``
changes the validation losses as ``L^{t+1} = L^t - A^t p^t`` (A is K x K: row i is
the eval domain, column j the training domain). Every round Aioli

1. **LearnParams** (Algorithm 2): for ``lp_rounds`` sweeps over a random order of
   the K domains, trains ``lp_steps`` steps on the smoothed one-hot mixture
   ``w_j = f e_j + (1-f)/(K-1) (1 - e_j)`` and records the loss drop on every eval
   domain, ``G[:, j] += L_before - L_after``. Averaged over sweeps, ``G = A W^T``
   with ``W[j] = w_j``, so each row of ``A`` solves ``W a_i = G_i`` (for ``f = 1``
   the one-hot case, ``A = G``).
2. optionally normalises ``A`` (shift so the minimum entry is 0, divide by the sum),
3. updates the proportions by exponentiated gradient,
   ``p^{t+1}_j ∝ p^t_j exp(eta * sum_i A^t_ij)``, and trains the rest of the round on it.

The reference implementation is HazyResearch/aioli (``trainer/aioli_trainer.py``);
the functions below follow it, including the EMA option on ``A``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from engine.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AioliOptions:
    """Knobs of Aioli (names follow the paper's code).

    rounds: number of update rounds T over the run (each round = LearnParams + training on p).
    lp_rounds: sweeps over the K domains inside one LearnParams.
    lp_steps: optimiser steps of each perturbed sub-run.
    one_hot_factor: f in (0, 1]; 1 trains sub-runs on one domain only, below 1 smooths the one-hot mixture.
    normalize_a: shift A to be non-negative and divide it by its sum before the update.
    eta: step size of the exponentiated-gradient update.
    ema: if set, the update uses an exponential moving average of A over rounds (weight on the past).
    """

    rounds: int = 4
    lp_rounds: int = 1
    lp_steps: int = 4
    one_hot_factor: float = 1.0
    normalize_a: bool = True
    eta: float = 1.0
    ema: float | None = None

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.lp_rounds < 1 or self.lp_steps < 1:
            raise InputError("Aioli's rounds, lp_rounds and lp_steps must each be at least 1.")
        if not 0 < self.one_hot_factor <= 1:
            raise InputError(
                f"one_hot_factor={self.one_hot_factor} is outside (0, 1].",
                hint="use 1 for pure one-hot sub-runs or e.g. 0.75 to smooth them.",
            )
        if self.ema is not None and not 0 <= self.ema < 1:
            raise InputError(f"ema={self.ema} is outside [0, 1).")

    def to_dict(self) -> dict:
        return asdict(self)


def perturbation_matrix(k: int, one_hot_factor: float) -> np.ndarray:
    """W with row j the smoothed one-hot mixture of sub-run j: f on j, (1-f)/(K-1) elsewhere."""
    if k == 1:
        return np.ones((1, 1))
    weights = np.full((k, k), (1.0 - one_hot_factor) / (k - 1))
    np.fill_diagonal(weights, one_hot_factor)
    return weights


def learn_params(
    train: Callable[[np.ndarray, int], None],
    evaluate: Callable[[], np.ndarray],
    loss_before: np.ndarray,
    options: AioliOptions,
    rng: np.random.Generator,
) -> np.ndarray:
    """LearnParams (Aioli Alg. 2): estimate A of L^{t+1} = L^t - A p^t from perturbed sub-runs.

    ``train(weights, steps)`` trains the model in place on a mixture, ``evaluate()``
    returns the K validation losses; ``loss_before`` are the losses at the start.
    """
    k = len(loss_before)
    weights = perturbation_matrix(k, options.one_hot_factor)
    drops = np.zeros((k, k))
    previous = np.asarray(loss_before, dtype=float)
    for j in sweep_order(k, options.lp_rounds, rng):
        train(weights[j], options.lp_steps)
        current = np.asarray(evaluate(), dtype=float)
        drops[:, j] += previous - current
        previous = current
    return solve_interactions(drops / options.lp_rounds, options.one_hot_factor)


def sweep_order(k: int, lp_rounds: int, rng: np.random.Generator) -> np.ndarray:
    """The order of perturbed sub-runs: one random permutation of the K domains a sweep."""
    return np.concatenate([rng.permutation(k) for _ in range(lp_rounds)])


def solve_interactions(drops: np.ndarray, one_hot_factor: float) -> np.ndarray:
    """A from the averaged loss drops G (= A W^T): row i of A solves W a_i = G_i."""
    if one_hot_factor == 1.0:
        return drops.copy()
    weights = perturbation_matrix(drops.shape[0], one_hot_factor)
    return np.linalg.solve(weights, drops.T).T


def normalise_interactions(a: np.ndarray) -> np.ndarray:
    """Aioli's optional normalisation: shift so the smallest entry is 0 (if negative), divide by the sum."""
    a = a.copy()
    if a.min() < 0:
        a -= a.min()
    total = a.sum()
    return a / total if total > 0 else np.full_like(a, 1.0 / a.size)


def exponentiated_gradient_step(p: np.ndarray, a: np.ndarray, eta: float) -> np.ndarray:
    """p^{t+1}_j ∝ p^t_j exp(eta * sum_i A_ij) (Aioli Alg. 1, line 6), renormalised to the simplex."""
    logits = np.log(np.asarray(p, dtype=float)) + eta * np.asarray(a, dtype=float).sum(axis=0)
    logits -= logits.max()  # numerically safe softmax
    weights = np.exp(logits)
    return weights / weights.sum()


class AioliPolicy:
    """The mixture a training step draws from, under Aioli; advanced one step at a time.

    The trainer calls :meth:`mixture_for_step` before every optimiser step; at round
    starts and after each perturbed sub-run the policy asks for the validation
    losses through ``evaluate``. Everything it holds is JSON-able for checkpoints.
    """

    def __init__(self, domains: list[str], total_steps: int, options: AioliOptions, seed: int,
                 initial: np.ndarray | None = None) -> None:
        self.domains = domains
        self.options = options
        k = len(domains)
        self.k = k
        self.total_steps = total_steps
        self.lp_length = options.lp_rounds * k * options.lp_steps
        round_length = total_steps // options.rounds
        if round_length <= self.lp_length:
            raise InputError(
                f"an Aioli round has {round_length} steps but LearnParams needs {self.lp_length} "
                f"({options.lp_rounds} sweep(s) x {k} domains x {options.lp_steps} steps).",
                hint="raise --tokens, or lower --aioli-rounds / --aioli-lp-steps.",
            )
        self.weights = np.full(k, 1.0 / k) if initial is None else np.asarray(initial, dtype=float)
        self.rng = np.random.default_rng([seed, 0xA101])
        self.round = -1
        self.order: list[int] = []
        self.drops = np.zeros((k, k))
        self.previous = np.zeros(k)
        self.ema_a: np.ndarray | None = None
        self.matrices: list[list[list[float]]] = []
        # The proportions each round trains on after its LearnParams (the one-hot sub-runs are not listed).
        self.schedule: list[dict] = [{"tokens": 0, "mixture": dict(zip(domains, map(float, self.weights)))}]

    def round_start(self, r: int) -> int:
        return r * self.total_steps // self.options.rounds

    def mixture_for_step(self, step: int, evaluate: Callable[[], np.ndarray], tokens_seen: int) -> np.ndarray:
        r = min(step * self.options.rounds // self.total_steps, self.options.rounds - 1)
        while self.round_start(r) > step:
            r -= 1
        offset = step - self.round_start(r)
        if r != self.round:  # a new round: losses now, then a fresh sweep order
            self.round = r
            self.previous = np.asarray(evaluate(), dtype=float)
            self.order = sweep_order(self.k, self.options.lp_rounds, self.rng).tolist()
            self.drops = np.zeros((self.k, self.k))
        segment, inside = divmod(offset, self.options.lp_steps)
        if offset < self.lp_length and inside == 0 and segment > 0:
            self._record_drop(self.order[segment - 1], evaluate)
        if offset == self.lp_length:
            self._record_drop(self.order[-1], evaluate)
            self._update(tokens_seen)
        if offset < self.lp_length:
            return perturbation_matrix(self.k, self.options.one_hot_factor)[self.order[segment]]
        return self.weights

    def _record_drop(self, domain: int, evaluate: Callable[[], np.ndarray]) -> None:
        current = np.asarray(evaluate(), dtype=float)
        self.drops[:, domain] += self.previous - current
        self.previous = current

    def _update(self, tokens_seen: int) -> None:
        a = solve_interactions(self.drops / self.options.lp_rounds, self.options.one_hot_factor)
        self.matrices.append(a.tolist())
        if self.options.normalize_a:
            a = normalise_interactions(a)
        if self.options.ema is not None:
            self.ema_a = a if self.ema_a is None else (1 - self.options.ema) * a + self.options.ema * self.ema_a
            # With EMA the reference code restarts from uniform weights each round.
            self.weights = exponentiated_gradient_step(np.full(self.k, 1.0 / self.k), self.ema_a, self.options.eta)
        else:
            self.weights = exponentiated_gradient_step(self.weights, a, self.options.eta)
        entry = {"tokens": int(tokens_seen), "mixture": dict(zip(self.domains, map(float, self.weights)))}
        self.schedule.append(entry)
        log.info("Aioli round %d: p = %s", self.round, entry["mixture"])

    def state_dict(self) -> dict:
        return {
            "weights": self.weights.tolist(), "rng": self.rng.bit_generator.state, "round": self.round,
            "order": list(self.order), "drops": self.drops.tolist(), "previous": self.previous.tolist(),
            "ema_a": None if self.ema_a is None else self.ema_a.tolist(),
            "matrices": self.matrices, "schedule": self.schedule,
        }

    def load_state_dict(self, state: dict) -> None:
        self.weights = np.asarray(state["weights"], dtype=float)
        self.rng.bit_generator.state = state["rng"]
        self.round = int(state["round"])
        self.order = list(state["order"])
        self.drops = np.asarray(state["drops"], dtype=float)
        self.previous = np.asarray(state["previous"], dtype=float)
        self.ema_a = None if state["ema_a"] is None else np.asarray(state["ema_a"], dtype=float)
        self.matrices = state["matrices"]
        self.schedule = state["schedule"]
