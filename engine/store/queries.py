"""The store's shared lookups: a project by name, the final value of each run and target, and the
stored fits' summaries.

Every function takes a :class:`Session` and neither commits nor closes it: the caller
owns the transaction (``with session_scope(url) as s: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.errors import InputError
from engine.store.models import LawFit, Measurement, Project, Run

_KNOWN_SHOWN = 10  # names listed in the "no project named" message


def project_or_none(session: Session, name: str) -> Project | None:
    return session.scalar(select(Project).where(Project.name == name))


def find_project(session: Session, name: str) -> Project:
    """The project named ``name``; an InputError listing the known projects when there is none."""
    project = project_or_none(session, name)
    if project is None:
        raise _no_project(session, name)
    return project


def project_id(session: Session, name: str) -> int:
    """The id of the project named ``name``; the same error as :func:`find_project`."""
    return find_project(session, name).id


def _no_project(session: Session, name: str) -> InputError:
    known = session.scalars(select(Project.name).order_by(Project.name).limit(_KNOWN_SHOWN + 1)).all()
    if not known:
        return InputError(f"no project named '{name}'; there are no projects yet.",
                          hint="import logs with `mixplan ingest --project NAME FILE...`.")
    shown = ", ".join(known[:_KNOWN_SHOWN]) + (", ..." if len(known) > _KNOWN_SHOWN else "")
    return InputError(f"no project named '{name}'; known: {shown}.", hint="list projects with `mixplan projects`.")


def final_values(session: Session, project: int, *, first_run: int | None = None,
                 last_run: int | None = None) -> dict[int, dict[int, float]]:
    """run id -> {target id: final value}: the value at the largest ``tokens_seen``, an end-of-run value
    (``tokens_seen`` NULL) after every checkpoint. ``first_run``/``last_run`` bound the run ids read."""
    query = (select(Measurement.run_id, Measurement.target_id, Measurement.value)
             .join(Run, Run.id == Measurement.run_id).where(Run.project_id == project))
    if first_run is not None and last_run is not None:
        query = query.where(Measurement.run_id.between(first_run, last_run))
    # NULL sorts first or last depending on the backend: order on "is NULL" first so it is always last.
    query = query.order_by(Measurement.run_id, Measurement.target_id, Measurement.tokens_seen.is_(None),
                           Measurement.tokens_seen)
    final: dict[int, dict[int, float]] = {}
    for run_id, target_id, value in session.execute(query):
        final.setdefault(run_id, {})[target_id] = value
    return final


def measurement_counts(session: Session, project: int, *, first_run: int | None = None,
                       last_run: int | None = None) -> dict[int, int]:
    """run id -> number of measurements stored for it."""
    query = (select(Measurement.run_id, func.count()).join(Run, Run.id == Measurement.run_id)
             .where(Run.project_id == project).group_by(Measurement.run_id))
    if first_run is not None and last_run is not None:
        query = query.where(Measurement.run_id.between(first_run, last_run))
    return dict(session.execute(query).all())


@dataclass(frozen=True)
class FitSummary:
    """A stored fit without its heavy columns (the laws' parameters, held-out predictions and refits:
    megabytes of JSON a row on a 110-target swarm). What choosing a law and listing fits need."""

    id: int
    law: str
    objective: str
    options: dict[str, Any]
    data_hash: str
    seconds: float
    created_at: datetime
    cv_metrics: dict[str, Any]
    smooth: bool
    refits_skipped: bool  # intervals from held-out residuals: the law was too far behind for refits

    @classmethod
    def of(cls, fit: LawFit) -> FitSummary:
        """The summary of a row already loaded whole."""
        return cls(fit.id, fit.law, fit.objective, fit.options, fit.data_hash, fit.seconds, fit.created_at,
                   fit.cv_metrics or {}, bool(fit.smooth), bool(fit.refits_skipped))


def fit_summaries(session: Session, project: int, objective: str, *, data_hash: str | None = None,
                  law: str | None = None) -> list[FitSummary]:
    """Summaries of the stored fits of ``objective`` (on ``data_hash`` / of ``law`` when given), newest
    first: small columns only, no row's parameters or refits are read (the two flags have columns of their
    own since migration 0006; a JSON path made SQLite parse tens of MB per query on a 110-target swarm)."""
    query = select(LawFit.id, LawFit.law, LawFit.objective, LawFit.options, LawFit.data_hash, LawFit.seconds,
                   LawFit.created_at, LawFit.cv_metrics, LawFit.smooth, LawFit.refits_skipped).where(
        LawFit.project_id == project, LawFit.objective == objective)
    if data_hash is not None:
        query = query.where(LawFit.data_hash == data_hash)
    if law is not None:
        query = query.where(LawFit.law == law)
    return [FitSummary(*row[:7], row[7] or {}, bool(row[8]), bool(row[9]))
            for row in session.execute(query.order_by(LawFit.id.desc()))]
