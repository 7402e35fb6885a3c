"""Where a training's results land in the store: run, eval targets, measurements, job.

Measurement writes are idempotent per (run, target, tokens seen): a run resumed
after a crash re-evaluates the checkpoints after its last saved state and the
rows it had already written are updated in place, never duplicated. The
checkpoint file is saved only after its measurements are committed, so a
resumed run never lacks an evaluation it had reached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.errors import InputError, TrainError
from engine.store import Domain, EvalTarget, Job, Measurement, Run, session_scope
from engine.store.models import utcnow
from engine.store.queries import project_id
from engine.train.jobs import beat, start_job, why_dead

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunHandle:
    run_id: int
    job_id: int
    resumed: bool


def ensure_domains_and_targets(project: str, unique_tokens: dict[str, int], data_path: str,
                               url: str | None = None, tags: dict[str, dict] | None = None) -> None:
    """Domain rows (unique tokens, optional tags) and one validation-loss target per domain; safe to race."""
    tags = tags or {}
    for attempt in range(3):
        try:
            with session_scope(url) as s:
                pid = project_id(s, project)
                domains = {d.name: d for d in s.scalars(select(Domain).where(Domain.project_id == pid))}
                targets = set(s.scalars(select(EvalTarget.name).where(EvalTarget.project_id == pid)))
                for name, tokens in unique_tokens.items():
                    if name not in domains:
                        domains[name] = Domain(project_id=pid, name=name, tags={})
                        s.add(domains[name])
                    domains[name].unique_tokens = int(tokens)
                    domains[name].data_path = data_path
                    if name in tags:
                        domains[name].tags = {**(domains[name].tags or {}), **tags[name]}
                    if name not in targets:
                        s.add(EvalTarget(project_id=pid, name=name, direction="lower", unit="nats/token"))
            return
        except IntegrityError:  # another worker created the same rows a moment ago
            if attempt == 2:
                raise


def begin_run(project: str, name: str, fields: dict, config: dict, resume: bool,
              url: str | None = None) -> RunHandle | None:
    """Create (or reopen for resume) the run row and start a job; None when the run is already complete."""
    with session_scope(url) as s:
        pid = project_id(s, project)
        run = s.scalar(select(Run).where(Run.project_id == pid, Run.name == name))
        resumed = False
        if run is not None:
            if run.provenance.get("spec_hash") != fields["provenance"]["spec_hash"]:
                raise InputError(
                    f"a run named '{name}' already exists in '{project}' with other settings.",
                    hint="pick another --name, or delete the old run.",
                )
            if run.status == "complete":
                return None
            _refuse_if_alive(s, run)
            if not resume:
                raise TrainError(
                    f"run '{name}' exists with status '{run.status}'. Fix: pass --resume to continue it "
                    "from its last checkpoint, or pick another --name."
                )
            run.status = "running"
            resumed = True
        else:
            run = Run(project_id=pid, name=name, status="running", **fields)
            s.add(run)
            s.flush()
        job = start_job(s, pid, run.id, "train", config)
        return RunHandle(run.id, job.id, resumed)


def _refuse_if_alive(session, run: Run) -> None:
    for job in session.scalars(select(Job).where(Job.run_id == run.id, Job.state == "running")):
        if why_dead(job) is None:
            raise TrainError(f"run '{run.name}' is being trained right now (job {job.id}, pid {job.pid}).")
        job.state = "failed"
        job.error = job.error or "superseded by a resume."


def write_measurements(handle: RunHandle, tokens_seen: int, losses: dict[str, float], progress: float,
                       url: str | None = None) -> None:
    """One evaluation's values, upserted per target, in one transaction with the job's progress."""
    with session_scope(url) as s:
        run = s.get(Run, handle.run_id)
        targets = dict(s.execute(select(EvalTarget.name, EvalTarget.id).where(EvalTarget.project_id == run.project_id)).all())
        existing = {
            m.target_id: m
            for m in s.scalars(select(Measurement).where(
                Measurement.run_id == handle.run_id, Measurement.tokens_seen == tokens_seen))
        }
        for name, value in losses.items():
            row = existing.get(targets[name])
            if row is None:
                s.add(Measurement(run_id=handle.run_id, target_id=targets[name], tokens_seen=tokens_seen,
                                  value=float(value)))
            else:
                row.value = float(value)
        beat(s, handle.job_id, progress)


def heartbeat(handle: RunHandle, progress: float, url: str | None = None) -> None:
    with session_scope(url) as s:
        beat(s, handle.job_id, progress)


def finish_run(handle: RunHandle, updates: dict, url: str | None = None) -> None:
    with session_scope(url) as s:
        run = s.get(Run, handle.run_id)
        for key, value in updates.items():
            setattr(run, key, value)
        run.status = "complete"
        job = s.get(Job, handle.job_id)
        job.state, job.progress, job.heartbeat_at = "done", 1.0, utcnow()


def fail_run(handle: RunHandle, error: str, url: str | None = None) -> None:
    with session_scope(url) as s:
        s.get(Run, handle.run_id).status = "failed"
        job = s.get(Job, handle.job_id)
        job.state, job.error, job.heartbeat_at = "failed", error, utcnow()


def record_failed_run(project: str, name: str, fields: dict, config: dict, error: str,
                      url: str | None = None) -> None:
    """A run that failed before it could start (bad spec): a failed run row and job with the error."""
    with session_scope(url) as s:
        pid = project_id(s, project)
        run = s.scalar(select(Run).where(Run.project_id == pid, Run.name == name))
        if run is None:
            run = Run(project_id=pid, name=name, status="failed", **fields)
            s.add(run)
            s.flush()
        elif run.status == "failed":
            return  # the trainer already recorded this failure with its job
        else:
            run.status = "failed"
        job = start_job(s, pid, run.id, "train", config)
        job.state, job.error = "failed", error
