"""A plan: the recommended mixture for one budget, its predictions and intervals, and the baselines.

:func:`make_plan` is the whole planning step without the store: it takes a
:class:`BudgetAwareModel`, the runs (:class:`Dataset`), a budget and
constraints, and returns a :class:`Plan` -- a plain dataclass that round-trips
through JSON (``to_dict``/``from_dict``) for the ``plan`` table and the exports.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from engine.errors import PlanError
from engine.ingest.mixtures import mixture_vector
from engine.ingest.validate import Where
from engine.plan import baselines as baseline_mod
from engine.plan.budget_law import BudgetAwareModel
from engine.plan.constraints import Constraints, resolve
from engine.laws.base import one_torch_thread
from engine.plan.optimize import OptimizerSettings, optimize
from engine.plan.trust import tv_distance_to_runs
from engine.progress import ProgressCallback
from engine.store.dataset import Dataset

log = logging.getLogger(__name__)

INTERVAL = (5.0, 95.0)  # percentiles of the bootstrap refits: a 90% interval


@dataclass
class Option:
    """One mixture and what the law predicts for it at the budget."""

    name: str
    mixture: dict[str, float]
    objective: float
    objective_interval: tuple[float, float]
    targets: dict[str, dict[str, float]]  # {target: {"value", "lo", "hi"}}
    epochs: dict[str, float | None]
    distance_to_nearest_run: float | None
    nearest_run: str | None
    adjusted: bool = False  # projected onto the constraints
    note: str = ""


@dataclass
class Plan:
    """The recommendation and everything it rests on."""

    project: str
    objective: str
    law: str
    budget_tokens: float
    model_params: float | None
    constraints: dict
    recommended: Option
    baselines: list[Option]
    optimum_spread: dict[str, float] | None  # std of each share across bootstrap refits' optima; None: unknown
    optimum_spread_tv: float | None  # mean TV distance of the replica optima from the plan; None: unknown
    chosen_from: str
    trust: dict
    repetition: dict
    token_law: dict
    domain_paths: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    law_fit_ids: list[int] = field(default_factory=list)
    data_hash: str = ""
    interval_percentiles: tuple[float, float] = INTERVAL
    interval_source: str = "bootstrap refits"  # or "held-out residuals": what the intervals rest on
    plan_id: int | None = None

    @property
    def domains(self) -> list[str]:
        return list(self.recommended.mixture)

    def mixture_array(self) -> np.ndarray:
        return np.array(list(self.recommended.mixture.values()))

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        d = dict(d)
        d["recommended"] = _option(d["recommended"])
        d["baselines"] = [_option(o) for o in d.get("baselines", [])]
        d["interval_percentiles"] = tuple(d.get("interval_percentiles", INTERVAL))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _option(d: dict) -> Option:
    d = dict(d)
    d["objective_interval"] = tuple(d["objective_interval"])
    return Option(**d)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass(frozen=True)
class PlanContext:
    """What planning needs from the runs, in the model's domain order."""

    observed: np.ndarray  # (n, k)
    observed_objective: np.ndarray  # (n,) measured objective, NaN where a target is missing
    run_names: list[str]
    unique_tokens: np.ndarray
    domain_tags: list[dict]
    domain_paths: list[str | None]
    project: str
    data_hash: str

    @classmethod
    def from_dataset(cls, dataset: Dataset, model: BudgetAwareModel) -> "PlanContext":
        order = [dataset.domains.index(d) for d in model.domains]
        cols = [dataset.targets.index(t) for t in model.targets]
        measured = dataset.final[:, cols] @ model.weights if cols else np.full(dataset.n_runs, np.nan)
        tags = dataset.domain_tags or [{} for _ in dataset.domains]
        paths = dataset.domain_paths or [None for _ in dataset.domains]
        return cls(dataset.mixtures[:, order], measured, list(dataset.run_names),
                   dataset.unique_tokens[order], [tags[j] for j in order], [paths[j] for j in order],
                   dataset.project, dataset.data_hash)


def natural_prior(context: PlanContext) -> np.ndarray:
    """Centre of the candidate search: token-proportional when unique tokens are known, else the runs' mean."""
    nat = baseline_mod.natural(context.unique_tokens)
    if nat is not None:
        return nat
    return context.observed.mean(axis=0) if len(context.observed) else np.full(len(context.unique_tokens),
                                                                              1.0 / len(context.unique_tokens))


def make_plan(
    model: BudgetAwareModel,
    context: PlanContext,
    budget_tokens: float,
    constraints: Constraints = Constraints(),
    *,
    objective: str = "mean",
    settings: OptimizerSettings = OptimizerSettings(),
    law_fit_ids: list[int] | None = None,
    warm_start: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> Plan:
    """Optimise, score the optimum and the baselines with intervals, and say what the numbers rest on.

    ``warm_start``: a neighbouring budget's plan, kept unless beaten by a margin (budget sweeps).
    """
    if len(context.observed) == 0:
        raise PlanError(f"project '{context.project}' has no complete runs to plan from.")
    bounds = resolve(constraints, model.domains, unique_tokens=context.unique_tokens,
                     budget_tokens=budget_tokens, domain_tags=context.domain_tags)
    base = baseline_mod.baselines(
        bounds, unique_tokens=context.unique_tokens, budget_tokens=budget_tokens,
        max_epochs=constraints.max_epochs, observed_mixtures=context.observed,
        observed_objective=context.observed_objective, run_names=context.run_names)
    # small kernels against a few hundred runs lose ~10x to intra-op thread contention (engine.laws.base)
    with one_torch_thread():
        optimum = optimize(
            model.scorer(budget_tokens), bounds, prior=natural_prior(context), observed=context.observed,
            fixed_candidates={b.name: b.mixture for b in base}, settings=settings, warm_start=warm_start,
            progress=progress)
        fixed_names = {b.name for b in base}
        mixtures = np.vstack([optimum.mixture[None, :]] + [b.mixture[None, :] for b in base])
        options = score_options(model, context, budget_tokens, mixtures,
                                names=["plan"] + [b.name for b in base],
                                adjusted=[False] + [b.adjusted for b in base],
                                notes=[f"chosen from: {optimum.chosen_from}"] + [b.note for b in base])
    optima = optimum.replica_optima
    if optima is not None and len(optima) > 1:
        spread = dict(zip(model.domains, map(float, optima.std(axis=0))))
        spread_tv = float(0.5 * np.abs(optima - optimum.mixture).sum(axis=1).mean())
    else:
        spread, spread_tv = None, None
    notes = list(model.token_law.notes) + [model.repetition.note]
    if not np.isfinite(optimum.trust.radius):
        notes.append("trust region off: the plan may lie far from every run the law was fitted on")
    elif optimum.chosen_from in fixed_names:
        notes.append(f"no candidate scored better than the {optimum.chosen_from} baseline, so the plan is that "
                     "baseline (score: prediction + pessimism x bootstrap spread)")
    elif options[0].distance_to_nearest_run is not None and options[0].distance_to_nearest_run > optimum.trust.radius:
        notes.append(f"the plan averages the best candidates inside the trust region; the average itself lies "
                     f"{options[0].distance_to_nearest_run:.3f} (TV) from the nearest run, beyond the radius "
                     f"{optimum.trust.radius:.3f}")
    replica_count = int(model.predict_replicas(optimum.mixture[None, :], budget_tokens).shape[0])
    if not model.real_refits:
        source = "held-out residuals"
        notes.append(f"law '{model.law}' has no bootstrap refits: its intervals are held-out residuals added to one "
                     "model, so the spread of the optimum is unknown and the score has no pessimism term")
    elif replica_count < 2:
        source = "none"
        notes.append("no bootstrap refits: intervals are zero-width and the spread of the optimum is unknown")
    else:
        source = "bootstrap refits"
    return Plan(
        project=context.project, objective=objective, law=model.law, budget_tokens=float(budget_tokens),
        model_params=model.model_params, constraints=constraints.to_dict(), recommended=options[0],
        baselines=options[1:], optimum_spread=spread,
        optimum_spread_tv=spread_tv, chosen_from=optimum.chosen_from,
        trust={"radius": optimum.trust.radius if np.isfinite(optimum.trust.radius) else None,
               "rule": optimum.trust.rule, "pessimism": optimum.pessimism,
               "distance_to_nearest_run": options[0].distance_to_nearest_run},
        repetition=model.repetition.to_dict(), token_law=model.token_law.to_dict(),
        domain_paths=dict(zip(model.domains, context.domain_paths)),
        notes=notes, law_fit_ids=list(law_fit_ids or []), data_hash=context.data_hash, interval_source=source,
    )


def score_options(
    model: BudgetAwareModel,
    context: PlanContext,
    budget_tokens: float,
    mixtures: np.ndarray,
    *,
    names: list[str],
    adjusted: list[bool] | None = None,
    notes: list[str] | None = None,
) -> list[Option]:
    """Predictions, 90% intervals (percentiles of the replicas), epochs and distance to the runs for each mixture."""
    mixtures = np.atleast_2d(mixtures)
    point_t = model.predict_targets(mixtures, budget_tokens)
    reps_t = model.predict_targets_replicas(mixtures, budget_tokens)
    point = point_t @ model.weights
    reps = reps_t @ model.weights
    lo, hi = np.percentile(reps, INTERVAL, axis=0) if reps.shape[0] > 1 else (point, point)
    lo_t, hi_t = np.percentile(reps_t, INTERVAL, axis=0) if reps_t.shape[0] > 1 else (point_t, point_t)
    epochs = model.epochs(mixtures, budget_tokens)
    if len(context.observed):
        dist, nearest = tv_distance_to_runs(mixtures, context.observed)
    else:
        dist, nearest = np.full(len(mixtures), np.nan), np.zeros(len(mixtures), dtype=int)
    out = []
    for i, name in enumerate(names):
        out.append(Option(
            name=name,
            mixture={d: float(v) for d, v in zip(model.domains, mixtures[i])},
            objective=float(point[i]),
            objective_interval=(float(min(lo[i], point[i])), float(max(hi[i], point[i]))),
            targets={t: {"value": float(point_t[i, j]), "lo": float(min(lo_t[i, j], point_t[i, j])),
                         "hi": float(max(hi_t[i, j], point_t[i, j]))} for j, t in enumerate(model.targets)},
            epochs={d: (float(e) if np.isfinite(e) else None) for d, e in zip(model.domains, epochs[i])},
            distance_to_nearest_run=float(dist[i]) if np.isfinite(dist[i]) else None,
            nearest_run=context.run_names[int(nearest[i])] if len(context.observed) else None,
            adjusted=bool(adjusted[i]) if adjusted else False,
            note=notes[i] if notes else "",
        ))
    return out


def what_if(plan_model: BudgetAwareModel, context: PlanContext, budget_tokens: float,
            mixture: dict[str, float]) -> Option:
    """Score a user-edited mixture -- the page's what-if editor; shares are checked as ingest checks a row."""
    values, _ = mixture_vector(mixture, plan_model.domains, Where("what-if", None, "share"))
    return score_options(plan_model, context, budget_tokens, values, names=["what-if"])[0]


def with_id(plan: Plan, plan_id: int) -> Plan:
    return replace(plan, plan_id=plan_id)
