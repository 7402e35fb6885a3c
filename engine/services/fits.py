"""Fit, compare, select and reuse mixing laws for a project's objective.

``fit_project`` fits every requested law per target of the objective, with
K-fold CV (figures on the combined objective) and bootstrap refits, and stores
one ``law_fit`` row per law; a row with the same law, objective, options and
data hash is reused instead of refitted. The project's default law per
objective is the one with the best CV figures (:func:`choose_default`) unless the
user set one (``Project.law_overrides``).
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from engine.actions import record_action
from engine.errors import FitError, InputError
from engine.ingest.mixtures import read_mixtures
from engine.laws import memo
from engine.laws.bootstrap import (
    OffsetReplicas,
    bootstrap_counts,
    conformal_scale,
    cross_fitted_coverage,
    interval,
    out_of_bag_bounds,
    raw_coverage,
    residual_offsets,
    scores,
)
from engine.laws.cv import fold_ids, metrics
from engine.laws.objective import FittedObjective, ObjectiveSpec, parse_objective
from engine.laws.registry import DEFAULT_LAWS, mixture_law
from engine.progress import ProgressCallback, report, scaled
from engine.store import session_scope
from engine.store.session import retry_write, store_error
from engine.store.dataset import Dataset, at_proxy_scale, load_dataset
from engine.store.models import LawFit, Project
from engine.store.queries import FitSummary, find_project, fit_summaries

log = logging.getLogger(__name__)

FIT_VERSION = 5  # bump when a law's fitting changes, so stored fits are not reused across versions
SPEARMAN_TIE = 0.002  # laws this close in Spearman count as tied; the lower MAE wins
MAE_TIE = 1.10  # ... unless a smooth law with refits is tied and within 10 % of that MAE: it wins then
# Bootstrap refits are spent on laws that could be chosen: a law this far behind the best held-out Spearman
# (ten ties) gets intervals from its held-out residuals instead (the exponential law on 512 runs x 64 domains
# x 110 targets: 37 of its 48 s were refits, at Spearman 0.38 against the GP's 0.99).
REFIT_MARGIN = 0.02
REFITS_SKIPPED_NOTE = "interval from held-out residuals (far behind the best: no refits)"  # fit table, Fit page


@dataclass(frozen=True)
class LawRow:
    law: str
    smooth: bool
    spearman: float
    pearson: float
    mae: float
    rmse: float
    top1_rank: int
    top1_gap: float
    seconds: float
    reused: bool
    error: str | None = None
    # share of held-out runs inside their calibrated 90 % interval (cross-fitted; NaN: not measured)
    coverage: float = float("nan")
    not_converged: tuple[str, ...] = ()  # targets whose fit stopped before converging
    refits_skipped: bool = False  # a law with refits, too far behind the best (REFIT_MARGIN): residual intervals


@dataclass(frozen=True)
class FitReport:
    project: str
    objective: str
    data_hash: str
    n_runs: int
    rows: list[LawRow]
    default_law: str | None
    overridden: bool = False


@dataclass(frozen=True)
class PredictionTable:
    """Predicted objective (and targets) of candidate mixtures, with 90% bootstrap intervals."""

    law: str
    objective: str
    names: list[str]
    domains: list[str]
    mixtures: np.ndarray
    predicted: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    targets: list[str]
    predicted_targets: np.ndarray
    notes: list[str] = field(default_factory=list)


def choose_default(rows: list[LawRow]) -> str | None:
    """Best held-out Spearman; laws within SPEARMAN_TIE of it are tied and the lowest MAE wins, except
    that a tied smooth law with bootstrap refits within MAE_TIE of that MAE is preferred.

    Within CV noise the smooth law with refits is the better plan: the planner follows its gradient,
    its interval and the spread of its optimum come from refits (a tree law or the stack has held-out
    residual offsets only, so `suggest` has no disagreement to use), and a plan takes ~1 s instead of
    ~5 s on RegMix. On RegMix the stack is ahead by 0.0008 Spearman and 4.6 % MAE: the GP is chosen.
    A law ahead by more than the tie (the stack on a ~100-run swarm where the trees win) still wins."""
    ok = [r for r in rows if r.error is None and np.isfinite(r.mae)]
    if not ok:
        return None
    best = max(r.spearman for r in ok)
    tied = [r for r in ok if r.spearman >= best - SPEARMAN_TIE]
    lowest = min(r.mae for r in tied)
    smooth = [r for r in tied if r.smooth and mixture_law(r.law).has_refits and r.mae <= MAE_TIE * lowest]
    # The law's name breaks exact ties, so every process asked the same question picks the same law.
    return min(smooth or tied, key=lambda r: (r.mae, -r.spearman, r.law)).law


def _options(folds: int, bootstrap: int, seed: int) -> dict[str, Any]:
    return {"folds": int(folds), "bootstrap": int(bootstrap), "seed": int(seed), "version": FIT_VERSION}


def _law_options(law_cls, seed: int) -> dict[str, Any]:
    """The fit's seed, for laws whose fitting draws random numbers (the GP's likelihood subsample)."""
    return {"seed": seed} if "seed" in inspect.signature(law_cls).parameters else {}


def _row_from_fit(fit: FitSummary, reused: bool) -> LawRow:
    m = {key: float("nan") if value is None else value for key, value in fit.cv_metrics.items()}  # see json_safe
    return LawRow(fit.law, fit.smooth, m["spearman"], m["pearson"], m["mae"], m["rmse"],
                  m["top1_rank"], m["top1_gap"], fit.seconds, reused,
                  coverage=float(m.get("coverage90", float("nan"))), not_converged=tuple(m.get("not_converged", ())),
                  refits_skipped=fit.refits_skipped)


def _failed_row(law: str, error: FitError) -> LawRow:
    return LawRow(law, mixture_law(law).smooth, float("nan"), float("nan"), float("nan"), float("nan"), 0,
                  float("nan"), 0.0, False, error=str(error))


def cross_validated_spearman(dataset: Dataset, spec: ObjectiveSpec, law: str, *, folds: int = 5,
                             seed: int = 0) -> float:
    """Held-out Spearman of ``law`` on the objective: the CV that :func:`fit_law` starts with (inside
    :func:`memo.sharing_fits` the fold fits are made once and reused there)."""
    law_cls = mixture_law(law)
    targets = dataset.final[:, [dataset.target_index(t) for t in spec.targets]]
    ids = fold_ids(len(dataset.mixtures), folds, seed)
    _, held_out = law_cls.cross_validate(dataset.mixtures, targets, ids, _law_options(law_cls, seed))
    return metrics(targets @ spec.weights, held_out @ spec.weights).spearman


def refit_contenders(spearman: dict[str, float], always: set[str] = frozenset()) -> set[str]:
    """Laws worth bootstrap refits: within REFIT_MARGIN of the best held-out Spearman, plus ``always``
    (a law fitted alone, or the user's choice for the objective)."""
    finite = [v for v in spearman.values() if np.isfinite(v)]
    best = max(finite) if finite else float("nan")
    return {law for law, v in spearman.items() if not np.isfinite(best) or v >= best - REFIT_MARGIN} | set(always)


def fit_law(dataset: Dataset, spec: ObjectiveSpec, law: str, *, folds: int = 5, bootstrap: int = 100,
            seed: int = 0, progress: ProgressCallback | None = None, refits: bool = True) -> dict[str, Any]:
    """Fit one law on every target of ``spec``: CV, full fit, replicas calibrated on held-out runs.
    Returns the columns of a LawFit row. ``progress``: an event before each of the three stages.
    ``refits`` False: intervals from held-out residuals even for a law that has bootstrap refits."""
    law_cls = mixture_law(law)
    options = _law_options(law_cls, seed)
    columns = [dataset.target_index(t) for t in spec.targets]
    targets = dataset.final[:, columns]
    mixtures = dataset.mixtures
    started = time.perf_counter()
    ids = fold_ids(len(mixtures), folds, seed)
    report(progress, "fit", 0, 3, f"{law}: cross-validation ({folds} folds)")
    options, held_out = law_cls.cross_validate(mixtures, targets, ids, options)
    report(progress, "fit", 1, 3, f"{law}: the fit on every run")
    full = memo.fit_batch(law_cls, mixtures, targets, np.ones((1, len(mixtures))), options=options)[0]
    use_refits = law_cls.has_refits and bootstrap > 0 and refits
    report(progress, "fit", 2, 3, f"{law}: {bootstrap} bootstrap refits" if use_refits else f"{law}: held-out residuals")
    actual = targets @ spec.weights
    predicted = held_out @ spec.weights
    if use_refits:
        counts = bootstrap_counts(len(mixtures), bootstrap, seed)
        refits = law_cls.fit_refits(mixtures, targets, counts, full, options=options)
        packed = [law_cls.pack_replicas([row[i] for row in refits]) for i in range(len(columns))]
        # The refits' objective at every run; a run's spread counts only the refits that left it out.
        at_runs = sum(w * law_cls.unpack_replicas(p, law).predict(mixtures) for w, p, law in zip(spec.weights, packed, full))
        run_scores = scores(actual - predicted, *out_of_bag_bounds(at_runs, counts))
        replicas = {"kind": "refits", "per_target": packed}
    else:
        offsets = np.array([residual_offsets(targets[:, i], held_out[:, i], max(bootstrap, 1)) for i in range(len(columns))])
        lo, hi = interval(offsets.T @ spec.weights)
        run_scores = scores(actual - predicted, np.full(len(actual), lo), np.full(len(actual), hi))
        replicas = {"kind": "cv_residuals", "offsets": offsets.tolist()}
        if law_cls.has_refits and bootstrap > 0:
            replicas["refits_skipped"] = True  # behind the best law by more than REFIT_MARGIN
    scale = conformal_scale(run_scores)
    replicas["interval_scale"] = scale
    seconds = time.perf_counter() - started
    figures = metrics(actual, predicted).as_dict()
    figures["coverage90"] = cross_fitted_coverage(run_scores, ids)
    figures["coverage90_raw"] = raw_coverage(run_scores)
    figures["interval_scale"] = scale
    figures["per_target"] = {t: metrics(targets[:, i], held_out[:, i]).as_dict() for i, t in enumerate(spec.targets)}
    unconverged = [t for t, m in zip(spec.targets, full) if not getattr(m, "converged_", True)]
    if unconverged:
        figures["not_converged"] = unconverged
    return {
        "params": {"law": law, "smooth": law_cls.smooth, "targets": spec.targets, "weights": spec.weights.tolist(),
                   "domains": dataset.domains, "per_target": law_cls.pack_targets(full)},
        "cv_metrics": figures,
        "cv_predictions": {"runs": dataset.run_names, "fold": ids.tolist(), "actual": _json(actual),
                           "predicted": _json(predicted), "per_target": {t: _json(held_out[:, i]) for i, t in enumerate(spec.targets)}},
        "bootstrap": replicas,
        "seconds": seconds,
    }


def _json(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


def _proxy_dataset(session, project: str, dataset: Dataset | None) -> Dataset:
    """The runs the mixing laws are fitted on: ``dataset`` (already loaded by the caller) or the store's, at the proxy scale."""
    return at_proxy_scale(dataset if dataset is not None else load_dataset(session, project))


def fit_project(project: str, *, objective: str | dict[str, float] = "mean", laws: list[str] | None = None,
                folds: int = 5, bootstrap: int = 100, seed: int = 0, url: str | None = None,
                dataset: Dataset | None = None, progress: ProgressCallback | None = None) -> FitReport:
    """Fit (or reuse) every requested law for ``objective``; store the fits; report CV figures and the default.

    ``dataset``: the project's runs when the caller has loaded them already (they are not read again).
    ``progress``: one event per law (a law's CV and bootstrap refits are the unit of work).
    """
    laws = list(laws or DEFAULT_LAWS)
    for name in laws:
        mixture_law(name)
    with session_scope(url) as s:
        project_row = find_project(s, project)
        dataset = _proxy_dataset(s, project, dataset)
        spec = parse_objective(objective, dataset.targets, dataset.directions)
        overrides = dict(project_row.law_overrides or {})
        project_id = project_row.id
    if dataset.n_runs == 0:
        raise FitError(f"project '{project}' has no complete runs to fit. Fix: upload runs first.")
    options = _options(folds, bootstrap, seed)
    rows: dict[str, LawRow] = {}
    computed: dict[str, dict[str, Any]] = {}
    chosen = overrides.get(spec.key)
    always = {laws[0]} if len(laws) == 1 else {chosen} - {None}  # refitted however far behind
    with session_scope(url) as s:
        for name in laws:
            stored = _stored_fit(s, project_id, name, spec.key, dataset.data_hash, options)
            # a law whose refits were skipped is fitted again when asked for alone or chosen by the user
            if stored is not None and not (name in always and stored.refits_skipped):
                rows[name] = _row_from_fit(stored, reused=True)
    todo = [name for name in laws if name not in rows]
    with memo.sharing_fits():  # the stack reuses the GP's and LightGBM's fits made here
        # First every law's CV (its fold fits are kept for the fits below), then refits for the contenders.
        spearman = {name: rows[name].spearman for name in rows}
        cv_seconds: dict[str, float] = {}
        for done, name in enumerate(todo):
            report(progress, "fit", done, 2 * len(todo), f"{name}: cross-validation ({done + 1} of {len(todo)} laws)")
            started = time.perf_counter()
            try:
                spearman[name] = cross_validated_spearman(dataset, spec, name, folds=folds, seed=seed)
                cv_seconds[name] = time.perf_counter() - started
            except FitError as exc:
                log.warning("law %s failed on %s: %s", name, project, exc)
                rows[name] = _failed_row(name, exc)
        contenders = refit_contenders(spearman, always)
        todo = [name for name in todo if name not in rows]
        for done, name in enumerate(todo):
            report(progress, "fit", len(todo) + done, 2 * len(todo), f"{name} ({done + 1} of {len(todo)} laws)")
            try:
                computed[name] = fit_law(dataset, spec, name, folds=folds, bootstrap=bootstrap, seed=seed,
                                         progress=scaled(progress, (len(todo) + done) / (2 * len(todo)),
                                                         (len(todo) + done + 1) / (2 * len(todo))),
                                         refits=name in contenders)
                computed[name]["seconds"] += cv_seconds[name]
            except FitError as exc:
                log.warning("law %s failed on %s: %s", name, project, exc)
                rows[name] = _failed_row(name, exc)
    report(progress, "fit", len(todo), len(todo), "storing the fits")
    if computed:
        rows.update(_store_fits(project, project_id, spec.key, dataset.data_hash, options, computed, url))
    rows = [rows[name] for name in laws]
    if all(r.error is not None for r in rows):
        raise FitError(f"no law could be fitted for objective '{spec.key}' of project '{project}': {rows[0].error}")
    override = overrides.get(spec.key)
    default = override if override in laws and any(r.law == override and r.error is None for r in rows) else choose_default(rows)
    return FitReport(project, spec.key, dataset.data_hash, dataset.n_runs, rows, default, overridden=default == override)


def _store_fits(project: str, project_id: int, objective: str, data_hash: str, options: dict[str, Any],
                computed: dict[str, dict[str, Any]], url: str | None) -> dict[str, LawRow]:
    """Store every computed law in one transaction: a fit killed midway leaves no law of it behind, so a
    plan never chooses from part of a set. A law another process stored meanwhile is reused, not doubled."""

    def write() -> dict[str, LawRow]:
        out = {}
        with session_scope(url) as s:
            # One fit store per project at a time, so a concurrent fit sees this one's rows and reuses them.
            # A write, not SELECT ... FOR UPDATE: SQLite ignores FOR UPDATE and would run the reads below before
            # taking its write lock (two processes then both see "not stored" and both insert the law); this
            # no-op update takes SQLite's lock and PostgreSQL's row lock before anything is read.
            s.execute(update(Project).where(Project.id == project_id).values(id=Project.id))
            for name, doc in computed.items():
                stored = _stored_fit(s, project_id, name, objective, data_hash, options)
                upgrade = stored is not None and stored.refits_skipped and not doc["bootstrap"].get("refits_skipped")
                if stored is not None and not upgrade:  # (a row with refits replaces one whose refits were skipped)
                    out[name] = _row_from_fit(stored, reused=True)
                    continue
                fit = LawFit(project_id=project_id, law=name, objective=objective, options=options,
                             data_hash=data_hash, smooth=bool(doc["params"].get("smooth")),
                             refits_skipped=bool(doc["bootstrap"].get("refits_skipped")),
                             **{key: json_safe(value) for key, value in doc.items()})
                s.add(fit)
                s.flush()
                record_action(s, "fit", project, {"law": name, "objective": objective, "fit": fit.id})
                out[name] = _row_from_fit(FitSummary.of(fit), reused=False)
        return out

    try:
        return retry_write(write)
    except DBAPIError as exc:
        raise store_error(exc, "the fitted laws could not be stored; nothing was changed") from exc


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None: PostgreSQL's JSON refuses them (a coverage or scale that
    could not be computed on a small project is unknown, not a number)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(item) is float for item in value):  # a row of numbers (most of a fit's row): no recursion
            return [item if math.isfinite(item) else None for item in value]
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _stored_fit(session, project_id: int, law: str, objective: str, data_hash: str,
                options: dict[str, Any] | None) -> FitSummary | None:
    for fit in fit_summaries(session, project_id, objective, data_hash=data_hash, law=law):
        if options is None or fit.options == options:
            return fit
    return None


def fit_summaries_now(project: str, *, objective: str | dict[str, float] = "mean", url: str | None = None,
                      dataset: Dataset | None = None) -> list[FitSummary]:
    """The newest stored fit of each law for ``objective`` on the project's current data, as summaries
    (what choosing and listing laws need; the one chosen row is read whole by the objective model)."""
    with session_scope(url) as s:
        dataset = _proxy_dataset(s, project, dataset)
        spec = parse_objective(objective, dataset.targets, dataset.directions)
        newest: dict[str, FitSummary] = {}
        for fit in fit_summaries(s, find_project(s, project).id, spec.key, data_hash=dataset.data_hash):
            newest.setdefault(fit.law, fit)
        return list(newest.values())


def model_from_fit(fit: LawFit | dict[str, Any]) -> FittedObjective:
    """Rebuild the fitted objective model (laws and replicas) from a stored row's params and bootstrap."""
    params = fit.params if isinstance(fit, LawFit) else fit["params"]
    boot = fit.bootstrap if isinstance(fit, LawFit) else fit["bootstrap"]
    law_cls = mixture_law(params["law"])
    laws = law_cls.unpack_targets(params["per_target"])
    if boot.get("kind") == "refits":
        replicas = [law_cls.unpack_replicas(packed, law) for packed, law in zip(boot["per_target"], laws)]
    else:
        replicas = [OffsetReplicas(law, np.asarray(off)) for law, off in zip(laws, boot.get("offsets", [[0.0]] * len(laws)))]
    spec = ObjectiveSpec(fit.objective if isinstance(fit, LawFit) else fit.get("objective", ""), params["targets"],
                         np.asarray(params["weights"], dtype=float))
    return FittedObjective(params["law"], bool(params["smooth"]), spec, params["domains"], laws, replicas,
                           has_refits=boot.get("kind") == "refits", interval_scale=float(boot.get("interval_scale") or 1.0))


def load_objective_model(project: str, *, objective: str | dict[str, float] = "mean", law: str | None = None,
                         url: str | None = None, dataset: Dataset | None = None) -> FittedObjective:
    """The project's default law for ``objective`` (or ``law``), rebuilt from the store; fitted first if absent.

    ``dataset``: the project's runs when the caller has loaded them already (they are not read again).
    """
    return _objective_model(project, objective=objective, law=law, url=url, dataset=dataset)[0]


def _objective_model(project: str, *, objective, law, url, dataset) -> tuple[FittedObjective, FitSummary]:
    if dataset is None:
        with session_scope(url) as s:
            dataset = load_dataset(s, project)
    fits = {f.law: f for f in fit_summaries_now(project, objective=objective, url=url, dataset=dataset)}
    if law is not None:
        mixture_law(law)
    wanted_missing = (law is not None and law not in fits) or not fits
    if wanted_missing:
        report = fit_project(project, objective=objective, laws=[law] if law else None, url=url, dataset=dataset)
        fits = {f.law: f for f in fit_summaries_now(project, objective=objective, url=url, dataset=dataset)}
        chosen = law or report.default_law
    else:
        chosen = law or default_law(project, objective=objective, url=url, fits=list(fits.values()), dataset=dataset)
    if chosen is None or chosen not in fits:
        raise FitError(f"no law could be fitted for objective '{objective}' of project '{project}'.")
    with session_scope(url) as s:  # the one whole row the model is rebuilt from
        row = s.get(LawFit, fits[chosen].id)
        if row is None:  # deleted since it was listed (the project was deleted or refitted meanwhile)
            raise FitError(f"the stored fit of law '{chosen}' for project '{project}' is gone. Fix: fit again.")
        return model_from_fit(row), fits[chosen]


def objective_model_with_fit(project: str, *, objective: str | dict[str, float] = "mean", law: str | None = None,
                             url: str | None = None, dataset: Dataset | None = None) -> tuple[FittedObjective, int]:
    """:func:`load_objective_model` and the id of the stored fit it was rebuilt from (plans record it)."""
    model, fit = _objective_model(project, objective=objective, law=law, url=url, dataset=dataset)
    return model, int(fit.id)


def default_law(project: str, *, objective: str | dict[str, float] = "mean", url: str | None = None,
                fits: list[FitSummary] | None = None, dataset: Dataset | None = None) -> str | None:
    """The user's override for this objective if set, else the best stored law by CV figures."""
    fits = fits if fits is not None else fit_summaries_now(project, objective=objective, url=url, dataset=dataset)
    with session_scope(url) as s:
        dataset = _proxy_dataset(s, project, dataset)
        spec = parse_objective(objective, dataset.targets, dataset.directions)
        override = (find_project(s, project).law_overrides or {}).get(spec.key)
    if override and any(f.law == override for f in fits):
        return override
    return choose_default([_row_from_fit(f, reused=True) for f in fits])


def set_default_law(project: str, objective: str | dict[str, float], law: str | None, url: str | None = None) -> str:
    """Make ``law`` the project's law for ``objective`` (None: back to the CV winner). Returns the objective key."""
    if law is not None:
        mixture_law(law)
    with session_scope(url) as s:
        dataset = at_proxy_scale(load_dataset(s, project))
        spec = parse_objective(objective, dataset.targets, dataset.directions)
        row = find_project(s, project)
        overrides = dict(row.law_overrides or {})
        if law is None:
            overrides.pop(spec.key, None)
        else:
            overrides[spec.key] = law
        row.law_overrides = overrides  # a new dict, so SQLAlchemy sees the change
    return spec.key


# -- candidate mixtures ---------------------------------------------------------------------------


def predict_mixtures(project: str, mixtures_file: str | Path, *, objective: str | dict[str, float] = "mean",
                     law: str | None = None, url: str | None = None) -> PredictionTable:
    """Predict the objective of each candidate mixture in a CSV, with a 90% bootstrap interval."""
    model = load_objective_model(project, objective=objective, law=law, url=url)
    table = read_mixtures(mixtures_file, model.domains)
    per_target, replicas = model.predict_with_replicas(table.shares)  # (m, t), (B, m)
    lo, hi = interval(replicas)
    return PredictionTable(model.law, model.objective, table.names, model.domains, table.shares,
                           per_target @ model.weights, lo, hi, model.targets, per_target, table.notes)


# -- views for the Fit page and the CLI -----------------------------------------------------------


@dataclass(frozen=True)
class HeldOut:
    """Held-out (CV) predictions of each stored law, one entry per run and law."""

    law: list[str]
    run: list[str]
    fold: list[int]
    actual: np.ndarray
    predicted: np.ndarray


def held_out_predictions(project: str, *, objective: str | dict[str, float] = "mean", url: str | None = None,
                         dataset: Dataset | None = None) -> HeldOut:
    """The newest fit of each law on the current data: its held-out predictions only (not its parameters)."""
    ids = [f.id for f in fit_summaries_now(project, objective=objective, url=url, dataset=dataset)]
    with session_scope(url) as s:
        rows = s.execute(select(LawFit.law, LawFit.cv_predictions).where(LawFit.id.in_(ids)).order_by(LawFit.id.desc())).all()
    law, run, fold, actual, predicted = [], [], [], [], []
    for name_of_law, cv in rows:
        for name, f, a, p in zip(cv["runs"], cv["fold"], cv["actual"], cv["predicted"]):
            if a is None or p is None:
                continue
            law.append(name_of_law)
            run.append(name)
            fold.append(int(f))
            actual.append(a)
            predicted.append(p)
    return HeldOut(law, run, fold, np.asarray(actual, float), np.asarray(predicted, float))


@dataclass(frozen=True)
class DomainEffect:
    """The objective as one domain's share sweeps 0..1, the others scaled from a reference mixture."""

    domain: str
    shares: np.ndarray
    predicted: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def sweep_domain(reference: np.ndarray, domain: int, points: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """(points,) shares of ``domain`` and (points, k) mixtures: the other domains keep their proportions."""
    reference = np.asarray(reference, dtype=float)
    shares = np.linspace(0.0, 1.0, points)
    rest = np.delete(reference, domain)
    rest = rest / rest.sum() if rest.sum() > 0 else np.full(len(rest), 1.0 / max(len(rest), 1))
    mixtures = np.zeros((points, len(reference)))
    mixtures[:, domain] = shares
    mixtures[:, np.arange(len(reference)) != domain] = (1 - shares)[:, None] * rest[None, :]
    return shares, mixtures


def domain_effect(model: FittedObjective, reference: np.ndarray, domain: str, points: int = 41) -> DomainEffect:
    """How the predicted objective moves with ``domain``'s share, with the 90% replica band."""
    if domain not in model.domains:
        raise InputError(f"unknown domain '{domain}'.", hint=f"use one of: {', '.join(model.domains)}")
    shares, mixtures = sweep_domain(reference, model.domains.index(domain), points)
    per_target, replicas = model.predict_with_replicas(mixtures)
    lo, hi = interval(replicas)
    return DomainEffect(domain, shares, per_target @ model.weights, lo, hi)


def mean_mixture(project: str, url: str | None = None, dataset: Dataset | None = None) -> tuple[list[str], np.ndarray]:
    """The project's domains and the average mixture of its runs (the reference of the domain-effect view).
    ``dataset``: the project's runs when the caller has loaded them already."""
    with session_scope(url) as s:
        dataset = _proxy_dataset(s, project, dataset)
    if dataset.n_runs == 0:
        raise InputError(f"project '{project}' has no runs.", hint="upload runs first.")
    return dataset.domains, dataset.mixtures.mean(axis=0)

