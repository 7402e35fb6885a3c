"""The read side of a project's runs: what the Runs page and `mixplan runs` show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select

from engine.store import Domain, EvalTarget, Measurement, Run, session_scope
from engine.store import queries


@dataclass(frozen=True)
class RunSummary:
    """One run as a user sees it. ``final`` is the last value per target (the end-of-run value where tokens are unknown)."""

    name: str
    mixture: dict[str, float]
    tokens: int | None
    model_params: int | None
    seed: int | None
    seq_len: int | None
    tokenizer: str | None
    framework: str | None
    source_file: str | None
    provenance: dict[str, Any]
    method: str
    status: str
    n_measurements: int
    final: dict[str, float] = field(default_factory=dict)

    def top_domains(self, n: int = 3) -> list[tuple[str, float]]:
        return sorted(self.mixture.items(), key=lambda kv: -kv[1])[:n]


@dataclass(frozen=True)
class DomainInfo:
    name: str
    unique_tokens: int | None
    tags: dict[str, Any]
    data_path: str | None


@dataclass(frozen=True)
class TargetInfo:
    name: str
    direction: str


@dataclass(frozen=True)
class CurveTable:
    """Learning curves in long form: entry i is run ``run[i]``, target ``target[i]`` at ``tokens_seen[i]``."""

    run: list[str]
    target: list[str]
    tokens_seen: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.run)


def list_runs(project: str, *, url: str | None = None, limit: int | None = None) -> list[RunSummary]:
    """Runs of ``project`` in import order, with their final values per target."""
    with session_scope(url) as session:
        project_id = queries.project_id(session, project)
        query = select(Run).where(Run.project_id == project_id).order_by(Run.id)
        if limit is not None:
            query = query.limit(limit)
        runs = session.scalars(query).all()
        if not runs:
            return []
        targets = dict(session.execute(select(EvalTarget.id, EvalTarget.name).where(EvalTarget.project_id == project_id)).all())
        first, last = runs[0].id, runs[-1].id
        final = {run_id: {targets[t]: v for t, v in values.items()}
                 for run_id, values in queries.final_values(session, project_id, first_run=first, last_run=last).items()}
        counts = queries.measurement_counts(session, project_id, first_run=first, last_run=last)
        return [
            RunSummary(
                name=r.name, mixture=dict(r.mixture or {}), tokens=r.tokens, model_params=r.model_params, seed=r.seed,
                seq_len=r.seq_len, tokenizer=r.tokenizer, framework=r.framework, source_file=r.source_file,
                provenance=dict(r.provenance or {}), method=r.method, status=r.status,
                n_measurements=counts.get(r.id, 0), final=final.get(r.id, {}),
            )
            for r in runs
        ]


def learning_curves(project: str, *, url: str | None = None) -> CurveTable:
    """Every measurement with a known tokens_seen, sorted by run, target, tokens."""
    with session_scope(url) as session:
        project_id = queries.project_id(session, project)
        rows = session.execute(
            select(Run.name, EvalTarget.name, Measurement.tokens_seen, Measurement.value)
            .join(Run, Run.id == Measurement.run_id)
            .join(EvalTarget, EvalTarget.id == Measurement.target_id)
            .where(Run.project_id == project_id, Measurement.tokens_seen.is_not(None))
            .order_by(Run.id, EvalTarget.id, Measurement.tokens_seen)).all()
    return CurveTable(
        run=[r[0] for r in rows], target=[r[1] for r in rows],
        tokens_seen=np.array([r[2] for r in rows], dtype=float), value=np.array([r[3] for r in rows], dtype=float),
    )


def has_learning_curves(project: str, *, url: str | None = None) -> bool:
    """True when some run has two or more checkpoints of one target."""
    with session_scope(url) as session:
        project_id = queries.project_id(session, project)
        found = session.execute(
            select(Measurement.run_id)
            .join(Run, and_(Run.id == Measurement.run_id, Run.project_id == project_id))
            .where(Measurement.tokens_seen.is_not(None))
            .group_by(Measurement.run_id, Measurement.target_id)
            .having(func.count(Measurement.id) >= 2).limit(1)).first()
        return found is not None


def list_domains(project: str, *, url: str | None = None) -> list[DomainInfo]:
    with session_scope(url) as session:
        project_id = queries.project_id(session, project)
        return [DomainInfo(d.name, d.unique_tokens, dict(d.tags) if isinstance(d.tags, dict) else {"tags": d.tags}, d.data_path)
                for d in session.scalars(select(Domain).where(Domain.project_id == project_id).order_by(Domain.id))]


def list_targets(project: str, *, url: str | None = None) -> list[TargetInfo]:
    with session_scope(url) as session:
        project_id = queries.project_id(session, project)
        return [TargetInfo(t.name, t.direction)
                for t in session.scalars(select(EvalTarget).where(EvalTarget.project_id == project_id).order_by(EvalTarget.id))]
