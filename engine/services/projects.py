"""Projects: create, list, look up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from engine.actions import record_action
from engine.errors import InputError
from engine.services.demo import ensure_demo_project  # noqa: F401  re-exported for the dashboard
from engine.store import Domain, EvalTarget, Project, Run, session_scope
from engine.store.dataset import load_dataset
from engine.store.queries import find_project, project_or_none


@dataclass(frozen=True)
class ProjectSummary:
    name: str
    description: str
    is_demo: bool
    runs: int
    domains: int
    targets: int
    created_at: datetime


def validate_project_name(name: str) -> str:
    """A project name is a label: no path separators, no '.'/'..', no control characters, so it can never
    name a folder by accident (files on disk are keyed by row ids, not names)."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise InputError("the project name is empty.", hint="give a name such as 'pile-1m'.")
    if len(cleaned) > 200:
        raise InputError("the project name is longer than 200 characters.", hint="use a shorter name.")
    bad = sorted({c for c in cleaned if c in "/\\" or not c.isprintable()})
    if bad or set(cleaned) == {"."}:
        shown = ", ".join(repr(c) for c in bad) if bad else repr(cleaned)
        raise InputError(f"the project name {cleaned[:60]!r} contains {shown}, which a project name cannot hold.",
                         hint="use letters, digits, spaces and - _ . : (e.g. 'pile-1m').")
    return cleaned


def create_project(name: str, description: str = "", *, url: str | None = None, exist_ok: bool = False) -> str:
    """Create a project; with ``exist_ok`` an existing one is returned unchanged."""
    name = validate_project_name(name)
    with session_scope(url) as s:
        if project_or_none(s, name) is not None:
            if exist_ok:
                return name
            raise InputError(f"a project named '{name}' already exists.", hint="pick another name or select it.")
        s.add(Project(name=name, description=description))
        record_action(s, "create-project", name)
    return name


def list_projects(url: str | None = None) -> list[ProjectSummary]:
    with session_scope(url) as s:
        def count(model):
            return dict(s.execute(select(model.project_id, func.count()).group_by(model.project_id)).all())

        runs, domains, targets = count(Run), count(Domain), count(EvalTarget)
        return [
            ProjectSummary(p.name, p.description, p.is_demo, runs.get(p.id, 0), domains.get(p.id, 0),
                           targets.get(p.id, 0), p.created_at)
            for p in s.scalars(select(Project).order_by(Project.created_at, Project.id))
        ]


def delete_project(name: str, *, url: str | None = None) -> None:
    with session_scope(url) as s:
        s.delete(find_project(s, name))
        record_action(s, "delete-project", name)


def project_dataset(project: str, *, url: str | None = None) -> Dataset:
    """The project's complete runs as the laws and the planner read them (the pages hold them a few seconds
    and read the data hash off them)."""
    with session_scope(url) as s:
        return load_dataset(s, project)


def project_data_hash(project: str, *, url: str | None = None) -> str:
    """The project's data hash (runs, values, curves, domain facts): pages cache on it, so any edit refreshes them."""
    with session_scope(url) as s:
        return load_dataset(s, project).data_hash
