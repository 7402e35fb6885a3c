"""Who is acting: the signed-in dashboard user, or the OS user of the CLI; and the action log.

The dashboard registers an actor source that reads the signed-in user of the
session being served (asked at the moment of the action: a button's callback
runs before the page's script); ``acting_as`` names an actor for a block (the
job runner's threads act as whoever submitted the job); a process the dashboard
starts (a training) inherits its user through ``MIXPLAN_ACTOR``; the CLI and
scripts fall back to ``cli:<OS user>``. Services call
:func:`record_action` inside the transaction that stores the action, so the
action and its log row land together or not at all.
"""

from __future__ import annotations

import getpass
import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

from sqlalchemy import select

from engine.store import Action

ACTOR_ENV = "MIXPLAN_ACTOR"  # set by the dashboard for the processes it starts, not a sign-in of its own
_ACTOR: ContextVar[str | None] = ContextVar("mixplan_actor", default=None)
_SOURCE: Callable[[], str | None] | None = None


def use_actor_source(source: Callable[[], str | None] | None) -> None:
    """Where the actor comes from in this process when no block names one (the dashboard's sessions)."""
    global _SOURCE
    _SOURCE = source


def current_actor() -> str:
    actor = _ACTOR.get() or (_SOURCE() if _SOURCE is not None else None) or os.environ.get(ACTOR_ENV)
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container with an arbitrary uid)
        return "cli"


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def record_action(session, kind: str, project: str, detail: dict | None = None) -> None:
    session.add(Action(actor=current_actor(), kind=kind, project=project, detail=detail or {}))


def list_actions(session, project: str | None = None, limit: int = 200) -> list[Action]:
    query = select(Action).order_by(Action.id.desc()).limit(limit)
    if project is not None:
        query = query.where(Action.project == project)
    return list(session.scalars(query))
