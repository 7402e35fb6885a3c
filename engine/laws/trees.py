"""Boosted regression trees on the shares (RegMix, Liu et al. 2024, Sec. 3.2), with LightGBM.

RegMix fits ``boosting_type="gbdt"``, ``objective="regression"``, 1,000 rounds at learning
rate 0.01 (sail-sg/regmix, ``regression_fitting/regression.ipynb``). Here, chosen by 5-fold
CV on the RegMix runs and on synthetic swarms (``bench/trees.py`` prints both):

* learning rate 0.1 and trees of at most 7 leaves: as good or better held-out Spearman and MAE
  than RegMix's settings on every swarm tried, at a fraction of the rounds (RegMix mean of 13
  losses: Spearman 0.9864 vs 0.9859 at 100 rounds; small trees also suit a few hundred runs);
* the number of rounds is chosen once per project by a CV pilot (:meth:`LightGBMLaw.choose_options`)
  on a few targets and shared by all: RegMix's losses want ~100, a 64-domain synthetic swarm ~400.

RegMix also stops early on a held-out split; a fit here cannot, since that split would be a CV
fold's test runs. LightGBM's ``min_data_in_leaf`` default of 20 is lowered to ``n // 20`` (at
least 2) when there are fewer than 400 runs, else a 30-run project gets a tree with one split.

Not smooth (piecewise constant: no gradient, no extrapolation), and refits per bootstrap
resample would multiply the cost, so this law's intervals come from its held-out CV residuals
(``has_refits = False``; see :mod:`engine.laws.bootstrap`).
"""

from __future__ import annotations

import base64
import os
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import lightgbm
import numpy as np

from engine.laws.base import LawBase, as_mixtures, check_fit_input

BASE_PARAMS: dict[str, Any] = {
    "boosting_type": "gbdt",
    "objective": "regression",
    "seed": 42,
    "verbosity": -1,
}
LEARNING_RATE = 0.1
NUM_LEAVES = 7
FALLBACK_ROUNDS = 200  # a law fitted without the pilot (``fit`` called directly, rounds unset)
KEEP_TRAINING_BELOW = 1024  # boosters on fewer runs keep their training state (see _train)
PREDICT_ALONE = 2048  # batches of fewer mixtures are predicted on the law's own threads
PILOT_TARGETS = 3  # targets the rounds pilot trains on (evenly spaced over the objective's targets)
PILOT_MAX_ROUNDS = 600
PILOT_PATIENCE = 60  # a pilot booster stops once its held-out error has not improved for this many rounds
PILOT_STEP = 10  # round counts the pilot compares: 10, 20, ...
PILOT_TOLERANCE = 0.005  # the fewest rounds whose pooled held-out error is within 0.5 % of the best

T = TypeVar("T")


def _on_all_cores(work: Callable[[Any], T], problems: list[Any]) -> list[T]:
    """``work`` over ``problems`` in a thread pool, one thread a core (results in order).

    LightGBM releases the GIL while it trains, so independent one-thread boosters side by side
    use the cores better than LightGBM's own threads on a few hundred runs (measured on the
    2-core machine: 78 CV + full fits of the RegMix runs took 24.5 s in a loop).
    """
    workers = max(1, min(len(problems), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(work, problems))


class LightGBMLaw(LawBase):
    name: ClassVar[str] = "lightgbm"
    smooth: ClassVar[bool] = False
    has_refits: ClassVar[bool] = False

    def __init__(self, rounds: int | None = None, learning_rate: float = LEARNING_RATE, num_leaves: int = NUM_LEAVES,
                 threads: int = 1) -> None:
        self.rounds = rounds  # None: chosen by the CV pilot of choose_options (FALLBACK_ROUNDS without one)
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.threads = threads

    def _params(self, n: int) -> dict[str, Any]:
        # force_row_wise: LightGBM otherwise times both histogram layouts on every new booster before
        # training (a seventh of a 480-round booster on 512 runs x 64 domains); the trees are the same.
        return {**BASE_PARAMS, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "num_threads": self.threads, "min_data_in_leaf": 20 if n >= 400 else max(2, n // 20),
                "min_data_in_bin": 1 if n < 100 else 3, "force_row_wise": True}

    def _train(self, mixtures: np.ndarray, y: np.ndarray, rounds: int, callbacks=None, valid=None) -> lightgbm.Booster:
        params = self._params(len(y))
        data = lightgbm.Dataset(mixtures, y, params={"verbosity": -1, "min_data_in_bin": params["min_data_in_bin"]})
        valid_sets = None if valid is None else [data.create_valid(*valid)]
        # keep_training_booster: skip train()'s closing text round trip of the model (a fifth of the fit
        # time on a few hundred runs); predictions are identical. A training booster keeps its training
        # state (3.2 MB against 0.8 MB a 480-round booster on 1,638 runs: 1.6 GB for the 660 boosters of
        # 2,048 runs x 110 targets), and on that many runs the round trip costs nothing measurable.
        return lightgbm.train(params, data, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks,
                              keep_training_booster=len(y) < KEEP_TRAINING_BELOW)

    def fit(self, mixtures, y, *, tokens=None, model_params=None) -> LightGBMLaw:
        mixtures = np.asarray(mixtures, dtype=float)
        y = np.asarray(y, dtype=float)
        check_fit_input(self.name, mixtures, y)
        self.booster_ = self._train(mixtures, y, self.rounds or FALLBACK_ROUNDS)
        self.k_ = mixtures.shape[1]
        return self

    @classmethod
    def fit_batch(cls, mixtures, targets, weights, *, options=None) -> list[list[LightGBMLaw]]:
        """Fit every (weight row, target) problem, one single-threaded booster per problem, on all cores.
        Each booster is seeded and single-threaded, so results do not depend on the pool."""
        mixtures = np.asarray(mixtures, dtype=float)
        targets = np.asarray(targets, dtype=float)
        problems = []
        for w in np.asarray(weights):
            rows = np.repeat(np.arange(len(w)), np.round(w).astype(int))
            for i in range(targets.shape[1]):
                problems.append((rows[np.isfinite(targets[rows, i])], i))
        fitted = _on_all_cores(lambda p: cls(**(options or {})).fit(mixtures[p[0]], targets[p[0], p[1]]), problems)
        n_tgt = targets.shape[1]
        return [fitted[r * n_tgt:(r + 1) * n_tgt] for r in range(len(weights))]

    @classmethod
    def choose_options(cls, mixtures, targets, ids, options):
        """``rounds=None``: the number of boosting rounds, chosen once for all targets by a CV pilot.

        On the CV folds ``ids``, boosters for up to PILOT_TARGETS targets (evenly spaced) train on the
        other folds and are scored on the held-out one every PILOT_STEP rounds; each stops PILOT_PATIENCE
        rounds after its own best (later counts reuse its last trees). The pooled held-out squared error,
        each target's scaled by its variance, picks the fewest rounds within PILOT_TOLERANCE of the best.
        """
        options = dict(options)
        if options.get("rounds") is not None:
            return options
        mixtures = np.asarray(mixtures, dtype=float)
        targets = np.asarray(targets, dtype=float)
        pilot = np.unique(np.linspace(0, targets.shape[1] - 1, min(PILOT_TARGETS, targets.shape[1])).round().astype(int))
        law = cls(**options)
        checks = np.arange(PILOT_STEP, PILOT_MAX_ROUNDS + 1, PILOT_STEP)

        def held_out_error(problem: tuple[int, int]) -> np.ndarray:
            fold, i = problem
            y = targets[:, i]
            train = (ids != fold) & np.isfinite(y)
            test = (ids == fold) & np.isfinite(y)
            if test.sum() == 0 or np.ptp(y[train]) <= 0:
                return np.zeros(len(checks))
            booster = law._train(mixtures[train], y[train], PILOT_MAX_ROUNDS, valid=(mixtures[test], y[test]),
                                 callbacks=[lightgbm.early_stopping(PILOT_PATIENCE, verbose=False)])
            errors = [((booster.predict(mixtures[test], num_iteration=int(c), num_threads=1) - y[test]) ** 2).sum()
                      for c in checks]
            return np.asarray(errors) / max(np.nanvar(y), 1e-300)

        folds = np.unique(ids)
        errors = np.sum(_on_all_cores(held_out_error, [(f, int(i)) for f in folds for i in pilot]), axis=0)
        best = errors.min()
        options["rounds"] = int(checks[np.flatnonzero(errors <= best * (1 + PILOT_TOLERANCE))[0]])
        return options

    def predict(self, mixtures, *, tokens=None, model_params=None) -> np.ndarray:
        self.check_fitted()
        x = as_mixtures(mixtures, self.k_)
        # A fold's few hundred held-out runs on the law's own threads: LightGBM's OpenMP pool costs more than
        # it saves there (4.9 vs 13.4 ms a call on 100 runs, 480 trees); large batches use every core.
        return np.asarray(self.booster_.predict(x, num_threads=self.threads if len(x) < PREDICT_ALONE else 0), dtype=float)

    @property
    def params(self) -> dict[str, Any]:
        # Kept once made: a fitted booster never changes, and the stack stores the same boosters again.
        # zlib level 1: a third of level 6's time for 19 % more bytes (a 480-tree model: 6.5 vs 21.5 ms).
        if getattr(self, "_model_b64", None) is None:
            model = zlib.compress(self.booster_.model_to_string().encode("utf-8"), 1)
            self._model_b64 = base64.b64encode(model).decode("ascii")
        return {"rounds": self.rounds, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "threads": self.threads, "k": self.k_, "model_zlib_b64": self._model_b64}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> LightGBMLaw:
        # fits stored before num_leaves was an option grew RegMix's trees (LightGBM's default, 31 leaves)
        law = cls(rounds=params["rounds"], learning_rate=params["learning_rate"],
                  num_leaves=params.get("num_leaves", 31), threads=params["threads"])
        text = zlib.decompress(base64.b64decode(params["model_zlib_b64"])).decode("utf-8")
        law.booster_ = lightgbm.Booster(model_str=text)
        law.k_ = int(params["k"])
        return law
