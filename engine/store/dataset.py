"""Read a project's runs out of the store as arrays the laws and the planner use.

A :class:`Dataset` is the one hand-off from the store to ``engine.laws`` and
``engine.plan``: numpy arrays with named axes, no ORM rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import InputError
from engine.store.models import Domain, EvalTarget, Measurement, Run
from engine.store.queries import final_values, find_project


@dataclass(frozen=True)
class Dataset:
    """Runs of one project.

    Axes: ``n`` runs (``run_names``), ``k`` domains (``domains``), ``t`` targets (``targets``).

    mixtures: (n, k) shares, rows sum to 1.
    final: (n, t) last measured value of each target per run (NaN where never measured).
    tokens: (n,) tokens of each run (NaN where unknown).
    model_params: (n,) parameters of each run's model (NaN where unknown).
    directions: (t,) "lower" or "higher" (which way is better).
    unique_tokens: (k,) distinct tokens each domain holds (NaN where unknown).
    curve_*: long-form learning curves, one entry per measurement with known tokens_seen.
    data_hash: hash of everything above (tags and data paths included); a fit on an unchanged hash is reused.
    """

    project: str
    run_names: list[str]
    domains: list[str]
    targets: list[str]
    directions: list[str]
    mixtures: np.ndarray
    final: np.ndarray
    tokens: np.ndarray
    model_params: np.ndarray
    unique_tokens: np.ndarray
    domain_tags: list[dict] = field(default_factory=list)
    domain_paths: list[str | None] = field(default_factory=list)
    curve_run: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    curve_target: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    curve_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_value: np.ndarray = field(default_factory=lambda: np.zeros(0))
    data_hash: str = ""

    @property
    def n_runs(self) -> int:
        return len(self.run_names)

    def target_index(self, name: str) -> int:
        try:
            return self.targets.index(name)
        except ValueError:
            raise InputError(
                f"project '{self.project}' has no evaluation target '{name}'.",
                hint=f"use one of: {', '.join(self.targets)}",
            ) from None


def load_dataset(session: Session, project_name: str, *, include_failed: bool = False) -> Dataset:
    """All complete runs of ``project_name`` with their final values and learning curves."""
    project = find_project(session, project_name)
    domains = session.scalars(select(Domain).where(Domain.project_id == project.id).order_by(Domain.id)).all()
    targets = session.scalars(select(EvalTarget).where(EvalTarget.project_id == project.id).order_by(EvalTarget.id)).all()
    # the five columns used, not whole Run objects (no provenance or schedule JSON decoded, no identity map):
    # a warm load of the RegMix runs 0.017 -> 0.013 s
    run_query = (select(Run.id, Run.name, Run.mixture, Run.tokens, Run.model_params)
                 .where(Run.project_id == project.id).order_by(Run.id))
    if not include_failed:
        run_query = run_query.where(Run.status == "complete")
    runs = session.execute(run_query).all()

    domain_names = [d.name for d in domains]
    domain_pos = {name: j for j, name in enumerate(domain_names)}
    target_pos = {t.id: i for i, t in enumerate(targets)}
    run_pos = {r.id: i for i, r in enumerate(runs)}
    n, k, t = len(runs), len(domains), len(targets)

    mixtures = np.zeros((n, k))
    for i, run in enumerate(runs):
        for name, share in run.mixture.items():
            if name in domain_pos:
                mixtures[i, domain_pos[name]] = share
    tokens = np.array([np.nan if r.tokens is None else float(r.tokens) for r in runs])
    params = np.array([np.nan if r.model_params is None else float(r.model_params) for r in runs])

    final = np.full((n, t), np.nan)
    c_run, c_target, c_tokens, c_value = [], [], [], []
    if n:
        for run_id, values in final_values(session, project.id).items():
            i = run_pos.get(run_id)
            if i is not None:
                for target_id, value in values.items():
                    final[i, target_pos[target_id]] = value
        rows = session.execute(
            select(Measurement.run_id, Measurement.target_id, Measurement.tokens_seen, Measurement.value)
            .join(Run, Run.id == Measurement.run_id)
            .where(Run.project_id == project.id, Measurement.tokens_seen.is_not(None))
        )
        for run_id, target_id, tokens_seen, value in rows:
            i = run_pos.get(run_id)
            if i is not None:
                c_run.append(i)
                c_target.append(target_pos[target_id])
                c_tokens.append(float(tokens_seen))
                c_value.append(value)

    order = np.lexsort((c_tokens, c_target, c_run)) if c_run else np.zeros(0, dtype=int)
    ds = Dataset(
        project=project_name,
        run_names=[r.name for r in runs],
        domains=domain_names,
        targets=[t.name for t in targets],
        directions=[t.direction for t in targets],
        mixtures=mixtures,
        final=final,
        tokens=tokens,
        model_params=params,
        unique_tokens=np.array([np.nan if d.unique_tokens is None else float(d.unique_tokens) for d in domains]),
        domain_tags=[dict(d.tags or {}) if isinstance(d.tags, dict) else {"tags": list(d.tags)} for d in domains],
        domain_paths=[d.data_path for d in domains],
        curve_run=np.asarray(c_run, dtype=int)[order],
        curve_target=np.asarray(c_target, dtype=int)[order],
        curve_tokens=np.asarray(c_tokens, dtype=float)[order],
        curve_value=np.asarray(c_value, dtype=float)[order],
    )
    return _with_hash(ds)


def _with_hash(ds: Dataset) -> Dataset:
    """The one data hash: runs, values, curves and every domain fact the planner reads (unique tokens, tags,
    data paths), so a tag edit invalidates cached planning inputs just as a new run does."""
    h = hashlib.sha256()
    h.update(json.dumps([ds.run_names, ds.domains, ds.targets, ds.directions, ds.domain_tags, ds.domain_paths],
                        sort_keys=True, default=str).encode())
    for arr in (ds.mixtures, ds.final, ds.tokens, ds.model_params, ds.unique_tokens,
                ds.curve_run, ds.curve_target, ds.curve_tokens, ds.curve_value):
        h.update(np.ascontiguousarray(arr, dtype=float).tobytes())
    object.__setattr__(ds, "data_hash", h.hexdigest())
    return ds


def proxy_scale_tokens(tokens: np.ndarray) -> float:
    """The token budget the mixing laws are fitted at: the budget most runs share (within 1%),
    the largest of those on a tie; NaN when no run has a token count."""
    finite = np.asarray(tokens, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan")
    budgets = np.unique(finite)
    counts = np.array([np.sum(np.abs(finite - b) <= 0.01 * b) for b in budgets])
    best = budgets[counts == counts.max()]
    return float(best.max())


def at_proxy_scale(ds: Dataset) -> Dataset:
    """The runs at the proxy scale when the runs differ in tokens, else ``ds`` unchanged.

    A mixing law predicts a target from the mixture at one scale; fitted across budgets it would
    mostly learn the budget (on the demo project: held-out Spearman below zero). The token
    dependence is the planner's token law, fitted on all runs and their learning curves.
    """
    tokens = np.asarray(ds.tokens, dtype=float)
    finite = tokens[np.isfinite(tokens)]
    if finite.size == 0 or np.ptp(finite) <= 0.01 * finite.max():
        return ds
    scale = proxy_scale_tokens(tokens)
    keep = np.flatnonzero(np.isfinite(tokens) & (np.abs(tokens - scale) <= 0.01 * scale))
    position = -np.ones(ds.n_runs, dtype=int)
    position[keep] = np.arange(keep.size)
    in_curves = np.isin(ds.curve_run, keep)
    return _with_hash(replace(
        ds,
        run_names=[ds.run_names[i] for i in keep],
        mixtures=ds.mixtures[keep],
        final=ds.final[keep],
        tokens=ds.tokens[keep],
        model_params=ds.model_params[keep],
        curve_run=position[ds.curve_run[in_curves]],
        curve_target=ds.curve_target[in_curves],
        curve_tokens=ds.curve_tokens[in_curves],
        curve_value=ds.curve_value[in_curves],
    ))
