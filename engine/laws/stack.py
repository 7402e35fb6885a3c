"""A CV-weighted stack of the GP and LightGBM: ``w * gp(p) + (1 - w) * lightgbm(p)``.

The two laws err differently (the GP is smooth and extrapolates; the trees follow sharp
effects of one domain), so a blend can beat both. The weight ``w`` in [0, 1] is chosen, for
every training set the stack is fitted on (each CV fold's, the full set's), from
out-of-fold predictions *inside that training set*: its runs are split into INNER_FOLDS folds,
both laws are refitted on each inner split, and ``w`` minimises the pooled squared error of the
inner held-out predictions (each target scaled by its variance) on up to WEIGHT_TARGETS targets;
one ``w`` serves all targets of the objective. So the weight that scores a CV fold never saw
that fold, and the stack's CV figures compare fairly with the single laws' (law selection by CV
cannot favour it by leakage).

Cost: within ``fit_project`` the GP and LightGBM of every training set are those laws' own fits
(shared through :mod:`engine.laws.memo`), so only the inner fits are new. The inner GP fits keep
the hyperparameters of their training set's fit (only the posterior weights are solved again; the
hyperparameters saw the inner held-out runs, which may favour the GP slightly in ``w``, never the
outer fold), and the inner boosters train on the weight targets only. Not smooth (it contains
trees), and no bootstrap refits: intervals come from the held-out CV residuals
(``has_refits = False``), like LightGBM's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from engine.laws import memo
from engine.laws.base import LawBase, as_mixtures
from engine.laws.gp import GPLaw
from engine.laws.trees import LightGBMLaw

INNER_FOLDS = 3
WEIGHT_TARGETS = 4  # targets (evenly spaced) whose inner held-out errors choose the weight


def _spread(count: int, limit: int) -> np.ndarray:
    """Up to ``limit`` evenly spaced indices of ``count`` items."""
    return np.unique(np.linspace(0, count - 1, min(limit, count)).round().astype(int))


def blend_weight(actual: np.ndarray, gp: np.ndarray, trees: np.ndarray, counts: np.ndarray) -> float:
    """The w in [0, 1] minimising sum_runs counts * ((w gp + (1 - w) trees - actual) / sd_target)^2.

    ``actual``, ``gp``, ``trees``: (n, t) values and held-out predictions (NaN: not measured);
    ``counts``: (n,) how often each run is in the training set. Closed form (a 1-d least squares),
    clipped to [0, 1]; 0.5 when the two laws predict alike.
    """
    scale = np.nanstd(np.where(counts[:, None] > 0, actual, np.nan), axis=0)
    d = (gp - trees) / np.maximum(scale, 1e-300)
    e = (actual - trees) / np.maximum(scale, 1e-300)
    c = np.where(np.isfinite(d) & np.isfinite(e), counts[:, None], 0.0)
    d, e = np.nan_to_num(d), np.nan_to_num(e)
    denominator = float((c * d * d).sum())
    if denominator <= 1e-300:
        return 0.5
    return float(np.clip((c * d * e).sum() / denominator, 0.0, 1.0))


class StackLaw(LawBase):
    name: ClassVar[str] = "stack"
    smooth: ClassVar[bool] = False
    has_refits: ClassVar[bool] = False

    def __init__(self, gp: dict[str, Any] | None = None, lightgbm: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.gp = gp  # options of each law (None: its defaults)
        self.lightgbm = lightgbm
        self.seed = seed

    def fit(self, mixtures, y, *, tokens=None, model_params=None) -> StackLaw:
        y = np.asarray(y, dtype=float)
        law = self.fit_batch(np.asarray(mixtures, dtype=float), y[:, None], np.ones((1, len(y))),
                             options={"gp": self.gp, "lightgbm": self.lightgbm, "seed": self.seed})[0][0]
        self.__dict__.update({k: v for k, v in law.__dict__.items() if k.endswith("_")})
        return self

    @classmethod
    def choose_options(cls, mixtures, targets, ids, options):
        """Each law's options resolved by its own CV pilot (the GP's shared kernel, LightGBM's rounds)."""
        seed = options.get("seed", 0)
        gp = memo.choose_options(GPLaw, mixtures, targets, ids, {"seed": seed, **(options.get("gp") or {})})
        trees = memo.choose_options(LightGBMLaw, mixtures, targets, ids, dict(options.get("lightgbm") or {}))
        return {**options, "gp": gp, "lightgbm": trees}

    @classmethod
    def fit_batch(cls, mixtures, targets, weights, *, options=None) -> list[list[StackLaw]]:
        options = {"gp": None, "lightgbm": None, "seed": 0, **(options or {})}
        gp_options = {"seed": options["seed"], **(options["gp"] or {})}
        trees_options = dict(options["lightgbm"] or {})
        mixtures = np.asarray(mixtures, dtype=float)
        targets = np.asarray(targets, dtype=float)
        weights = np.asarray(weights, dtype=float)
        # the GP's and LightGBM's own fits on these rows when fit_project made them (engine.laws.memo)
        gp = memo.fit_batch(GPLaw, mixtures, targets, weights, options=gp_options)
        trees = memo.fit_batch(LightGBMLaw, mixtures, targets, weights, options=trees_options)

        # Inner folds of every training set: its runs in a seeded order, dealt round-robin (a run's
        # inner fold depends only on the runs of its set, so a fit on a subset splits it the same way).
        picked = _spread(targets.shape[1], WEIGHT_TARGETS)
        inner_ids = []
        inner_rows = []
        for w in weights:
            runs = np.flatnonzero(w > 0)
            fold = np.full(len(w), -1)
            fold[runs[np.random.default_rng(options["seed"]).permutation(len(runs))]] = np.arange(len(runs)) % INNER_FOLDS
            inner_ids.append(fold)
            inner_rows += [w * (fold != j) for j in range(INNER_FOLDS)]
        inner_rows = np.asarray(inner_rows)
        hyper = [[gp[r][i] for i in picked] for r in range(len(weights)) for _ in range(INNER_FOLDS)]
        gp_inner = GPLaw.fit_batch(mixtures, targets[:, picked], inner_rows, options=gp_options, hyper=hyper)
        trees_inner = LightGBMLaw.fit_batch(mixtures, targets[:, picked], inner_rows, options=trees_options)

        out = []
        for r, w in enumerate(weights):
            runs = np.flatnonzero(w > 0)
            held_gp = np.full((len(runs), len(picked)), np.nan)
            held_trees = held_gp.copy()
            for j in range(INNER_FOLDS):
                inside = inner_ids[r][runs] == j
                for col in range(len(picked)):
                    held_gp[inside, col] = gp_inner[r * INNER_FOLDS + j][col].predict(mixtures[runs[inside]])
                    held_trees[inside, col] = trees_inner[r * INNER_FOLDS + j][col].predict(mixtures[runs[inside]])
            blend = blend_weight(targets[runs][:, picked], held_gp, held_trees, w[runs])
            row = []
            for i in range(targets.shape[1]):
                law = cls(gp=options["gp"], lightgbm=options["lightgbm"], seed=options["seed"])
                law.gp_, law.trees_, law.weight_ = gp[r][i], trees[r][i], blend
                row.append(law)
            out.append(row)
        return out

    def predict(self, mixtures, *, tokens=None, model_params=None) -> np.ndarray:
        self.check_fitted()
        mixtures = as_mixtures(mixtures, self.trees_.k_)
        return self.weight_ * self.gp_.predict(mixtures) + (1.0 - self.weight_) * self.trees_.predict(mixtures)

    @classmethod
    def predict_targets(cls, laws: list[StackLaw], mixtures: np.ndarray) -> np.ndarray:
        """(m, t) through each part's own batched prediction, shared within :func:`memo.sharing_fits`
        (in a project fit the GP's and LightGBM's CV have predicted the same held-out runs already)."""
        for law in laws:
            law.check_fitted()
        mixtures = as_mixtures(mixtures, laws[0].trees_.k_)
        gp = memo.predict_targets(GPLaw, [law.gp_ for law in laws], mixtures)
        trees = memo.predict_targets(LightGBMLaw, [law.trees_ for law in laws], mixtures)
        weight = np.array([law.weight_ for law in laws])
        return weight * gp + (1.0 - weight) * trees

    @property
    def params(self) -> dict[str, Any]:
        return {"gp_options": self.gp, "lightgbm_options": self.lightgbm, "seed": self.seed, "weight": self.weight_,
                "gp": self.gp_.params, "lightgbm": self.trees_.params}

    @classmethod
    def pack_targets(cls, laws: list[StackLaw]) -> Any:
        """Each part packed by its own law, so the GP's training inputs are stored once, not once a
        target (110 targets x 512 runs x 64 domains made a 245 MB row that took seconds to read)."""
        first = laws[0]
        return {"gp_options": first.gp, "lightgbm_options": first.lightgbm, "seed": first.seed,
                "weight": [law.weight_ for law in laws],
                "gp": GPLaw.pack_targets([law.gp_ for law in laws]),
                "lightgbm": LightGBMLaw.pack_targets([law.trees_ for law in laws])}

    @classmethod
    def unpack_targets(cls, packed: Any) -> list[StackLaw]:
        if isinstance(packed, list):  # stored before the parts were packed apart
            return super().unpack_targets(packed)
        out = []
        for gp, trees, weight in zip(GPLaw.unpack_targets(packed["gp"]), LightGBMLaw.unpack_targets(packed["lightgbm"]),
                                     packed["weight"]):
            law = cls(gp=packed["gp_options"], lightgbm=packed["lightgbm_options"], seed=packed["seed"])
            law.gp_, law.trees_, law.weight_ = gp, trees, float(weight)
            out.append(law)
        return out

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> StackLaw:
        law = cls(gp=params["gp_options"], lightgbm=params["lightgbm_options"], seed=params["seed"])
        law.gp_ = GPLaw.from_params(params["gp"])
        law.trees_ = LightGBMLaw.from_params(params["lightgbm"])
        law.weight_ = float(params["weight"])
        return law
