"""Boosted regression trees on the shares (RegMix, Liu et al. 2024, Sec. 3.2), with LightGBM.

Default settings are RegMix's own (sail-sg/regmix, ``regression_fitting/regression.ipynb``,
"Fitting" cell): ``boosting_type="gbdt"``, ``objective="regression"``,
``num_iterations=1000``, ``learning_rate=1e-2``, ``seed=42``. (RegMix also stops early
on a held-out split; we do not, since that split would be a CV fold's test runs.)
The one change: LightGBM's ``min_data_in_leaf`` default of 20 is lowered to
``n // 20`` (at least 2) when there are fewer than 400 runs, else a 30-run project
gets a tree with one split.

Not smooth (piecewise constant: no gradient, no extrapolation), and 1,300 refits
would be too slow, so this law's intervals come from its held-out CV residuals
(``has_refits = False``; see :mod:`engine.laws.bootstrap`).
"""

from __future__ import annotations

import base64
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import lightgbm
import numpy as np

from engine.laws.base import LawBase, as_mixtures, check_fit_input

REGMIX_PARAMS: dict[str, Any] = {
    "boosting_type": "gbdt",
    "objective": "regression",
    "learning_rate": 1e-2,
    "seed": 42,
    "verbosity": -1,
}
REGMIX_ROUNDS = 1000


class LightGBMLaw(LawBase):
    name: ClassVar[str] = "lightgbm"
    smooth: ClassVar[bool] = False
    has_refits: ClassVar[bool] = False

    def __init__(self, rounds: int = REGMIX_ROUNDS, learning_rate: float = 1e-2, threads: int = 1) -> None:
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.threads = threads

    def fit(self, mixtures, y, *, tokens=None, model_params=None) -> "LightGBMLaw":
        mixtures = np.asarray(mixtures, dtype=float)
        y = np.asarray(y, dtype=float)
        check_fit_input(self.name, mixtures, y)
        params = {**REGMIX_PARAMS, "learning_rate": self.learning_rate, "num_threads": self.threads,
                  "min_data_in_leaf": 20 if len(y) >= 400 else max(2, len(y) // 20),
                  "min_data_in_bin": 1 if len(y) < 100 else 3}
        # keep_training_booster: skip train()'s closing text round trip of the model (a fifth of the
        # fit time on a few hundred runs); predictions are identical, the training data is small.
        self.booster_ = lightgbm.train(params, lightgbm.Dataset(mixtures, y, params={"verbosity": -1}),
                                       num_boost_round=self.rounds, keep_training_booster=True)
        self.k_ = mixtures.shape[1]
        return self

    @classmethod
    def fit_batch(cls, mixtures, targets, weights, *, options=None) -> list[list["LightGBMLaw"]]:
        """Fit every (weight row, target) problem, one single-threaded booster per problem, on all cores.

        LightGBM releases the GIL while it trains, so independent one-thread fits in a thread
        pool use the cores better than LightGBM's own threads on a few hundred runs (measured on
        the 2-core machine, RegMix runs: 78 CV + full fits took 24.5 s in a loop). Each booster
        is seeded and single-threaded, so results do not depend on the pool.
        """
        mixtures = np.asarray(mixtures, dtype=float)
        targets = np.asarray(targets, dtype=float)
        problems = []
        for w in np.asarray(weights):
            rows = np.repeat(np.arange(len(w)), np.round(w).astype(int))
            for i in range(targets.shape[1]):
                problems.append((rows[np.isfinite(targets[rows, i])], i))

        def fit_one(problem: tuple[np.ndarray, int]) -> "LightGBMLaw":
            keep, i = problem
            return cls(**(options or {})).fit(mixtures[keep], targets[keep, i])

        workers = max(1, min(len(problems), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            fitted = list(pool.map(fit_one, problems))
        n_tgt = targets.shape[1]
        return [fitted[r * n_tgt:(r + 1) * n_tgt] for r in range(len(weights))]

    def predict(self, mixtures, *, tokens=None, model_params=None) -> np.ndarray:
        self.check_fitted()
        return np.asarray(self.booster_.predict(as_mixtures(mixtures, self.k_)), dtype=float)

    @property
    def params(self) -> dict[str, Any]:
        model = zlib.compress(self.booster_.model_to_string().encode("utf-8"), 6)
        return {"rounds": self.rounds, "learning_rate": self.learning_rate, "threads": self.threads,
                "k": self.k_, "model_zlib_b64": base64.b64encode(model).decode("ascii")}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "LightGBMLaw":
        law = cls(rounds=params["rounds"], learning_rate=params["learning_rate"], threads=params["threads"])
        text = zlib.decompress(base64.b64decode(params["model_zlib_b64"])).decode("utf-8")
        law.booster_ = lightgbm.Booster(model_str=text)
        law.k_ = int(params["k"])
        return law
