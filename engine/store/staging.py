"""Imports in progress: a stage row per import, its heartbeat, and the removal of stages whose process died.

An import commits its rows into ``staged_run`` / ``staged_measurement`` a chunk at a time, so a large
file never holds the write lock for long; nothing but the import reads those tables. A process killed
midway leaves its stage behind, invisible; :func:`purge_dead_stages` (run by every import and by
``mixplan db clean``) deletes it once its process is gone.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from engine.store.models import IngestStage, StagedMeasurement, StagedRun, utcnow

log = logging.getLogger(__name__)

# A stage of another machine (a shared PostgreSQL) is taken for dead after this long without a heartbeat;
# a heartbeat comes with every chunk, seconds apart even under load.
STALE_AFTER = timedelta(minutes=15)


def open_stage(connection: Connection, project: str) -> int:
    """A new stage for an import into ``project`` (committed: its rows come in later transactions)."""
    now = utcnow()
    stage_id = connection.execute(insert(IngestStage).returning(IngestStage.id), {
        "project": project, "pid": os.getpid(), "host": socket.gethostname(), "heartbeat_at": now,
        "created_at": now}).scalar_one()
    connection.commit()
    return stage_id


def heartbeat(connection: Connection, stage_id: int) -> None:
    """Say the stage's import is alive (in the caller's chunk transaction)."""
    connection.execute(update(IngestStage).where(IngestStage.id == stage_id).values(heartbeat_at=utcnow()))


def _delete(connection: Connection, stage_ids: list[int]) -> None:
    for model in (StagedMeasurement, StagedRun):
        connection.execute(delete(model).where(model.stage_id.in_(stage_ids)))
    connection.execute(delete(IngestStage).where(IngestStage.id.in_(stage_ids)))


def drop_stage(connection: Connection, stage_id: int) -> None:
    """Delete a stage and its rows once its import is published or refused. Best effort: when the database
    refuses (busy, full disk) the rows stay invisible, and the purge removes them after this process ends."""
    try:
        connection.rollback()
        _delete(connection, [stage_id])
        connection.commit()
    except DBAPIError as exc:
        connection.rollback()
        log.warning("could not delete the staged rows of import stage %d (%s); a later import removes them",
                    stage_id, type(exc.orig).__name__)


def dead_stages(connection: Connection) -> list[int]:
    """Stages whose import process is gone: not running on this host, or silent for :data:`STALE_AFTER`."""
    from engine.train.jobs import process_alive  # the one liveness test, shared with the job rows

    host, cutoff = socket.gethostname(), utcnow() - STALE_AFTER
    dead = []
    for stage_id, pid, stage_host, beat in connection.execute(
            select(IngestStage.id, IngestStage.pid, IngestStage.host, IngestStage.heartbeat_at)):
        beat = beat if beat.tzinfo else beat.replace(tzinfo=cutoff.tzinfo)  # SQLite returns naive UTC
        if (stage_host == host and not process_alive(pid)) or beat < cutoff:
            dead.append(stage_id)
    return dead


def purge_dead_stages(connection: Connection) -> int:
    """Delete the stages of killed imports (committed); how many there were."""
    dead = dead_stages(connection)
    connection.rollback()
    if dead:
        _delete(connection, dead)
        connection.commit()
        log.info("removed %d import stage(s) left by killed imports", len(dead))
    return len(dead)
