"""Job rows: state, progress and heartbeat of proxy trainings, so a dead worker is visibly failed.

A training process beats (updates ``heartbeat_at`` and ``progress``) every few
seconds. :func:`mark_stale_jobs` fails every running job whose process is gone
(a job of this host whose pid is no longer alive) or, for a job started on
another host, whose last beat is older than a threshold; it fails the job's run
too, which can then be resumed from its checkpoint.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from engine.store import Job, Project, Run, session_scope
from engine.store.models import utcnow
from engine.store.queries import find_project

STALE_AFTER_SECONDS = 60.0
TRAINING_KINDS = ("train", "sweep")


@dataclass(frozen=True)
class JobView:
    id: int
    project: str
    run: str | None
    kind: str
    state: str
    progress: float
    pid: int | None
    heartbeat_at: datetime | None
    error: str | None
    created_at: datetime


def start_job(session, project_id: int, run_id: int | None, kind: str, config: dict) -> Job:
    job = Job(
        project_id=project_id, run_id=run_id, kind=kind, state="running", progress=0.0,
        config={**config, "host": socket.gethostname()}, pid=os.getpid(), heartbeat_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def beat(session, job_id: int, progress: float) -> None:
    job = session.get(Job, job_id)
    job.heartbeat_at = utcnow()
    job.progress = float(progress)


def aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def why_dead(job: Job, stale_after_seconds: float = STALE_AFTER_SECONDS) -> str | None:
    """Why a 'running' job is in fact dead, or None while it lives.

    On this host the process table is the truth (a sweep that runs its runs in-process
    beats only between runs); for a job of another host the heartbeat is all there is.
    """
    if job.pid is not None and (job.config or {}).get("host") == socket.gethostname():
        return None if process_alive(job.pid) else "its process is gone"
    beat_at = aware(job.heartbeat_at)
    if beat_at is None or beat_at < utcnow() - timedelta(seconds=stale_after_seconds):
        return f"no heartbeat since {beat_at:%Y-%m-%d %H:%M:%S} UTC" if beat_at else "it never sent a heartbeat"
    return None


def mark_stale_jobs(url: str | None = None, stale_after_seconds: float = STALE_AFTER_SECONDS) -> list[int]:
    """Fail queued or running jobs whose process died or whose heartbeat is too old; returns their ids."""
    failed = []
    with session_scope(url) as s:
        for job in s.scalars(select(Job).where(Job.state.in_(("queued", "running")))):
            why = why_dead(job, stale_after_seconds)
            if why is None:
                continue
            job.state = "failed"
            job.error = (f"the training stopped unexpectedly ({why}); resume it with --resume."
                         if job.kind in TRAINING_KINDS else f"the {job.kind} job stopped unexpectedly ({why}); "
                                                            "ask for it again.")
            if job.run_id is not None:
                run = s.get(Run, job.run_id)
                if run is not None and run.status == "running":
                    run.status = "failed"
            failed.append(job.id)
    return failed


def list_jobs(project: str | None = None, url: str | None = None, limit: int = 200) -> list[JobView]:
    """Most recent jobs first (after failing the stale ones, so the list never lies)."""
    mark_stale_jobs(url)
    with session_scope(url) as s:
        if project is not None:
            find_project(s, project)  # an unknown name is an error naming the known ones, not an empty list
        query = (
            select(Job, Project.name, Run.name)
            .join(Project, Project.id == Job.project_id)
            .outerjoin(Run, Run.id == Job.run_id)
            .order_by(Job.id.desc())
            .limit(limit)
        )
        if project is not None:
            query = query.where(Project.name == project)
        return [
            JobView(job.id, project_name, run_name, job.kind, job.state, job.progress, job.pid,
                    aware(job.heartbeat_at), job.error, aware(job.created_at))
            for job, project_name, run_name in s.execute(query)
        ]
