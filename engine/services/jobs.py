"""Jobs: long work (fit, plan, budget sweep, suggestion, training) outside the page's script thread.

A job is a row in ``job``: kind, settings, state, the latest progress event,
heartbeat, result. :class:`JobRunner` runs the work in its own threads (one
runner per dashboard server) and writes everything a page needs to the row, so
any page, any tab, a reload or a restarted server reads the same truth:

- the key (kind + project + settings + data hash) is unique among live jobs
  (a partial unique index), so two tabs asking for the same fit share one job;
- a page asks for cancellation by setting ``cancel_requested``; the work stops at
  its next progress event (:class:`engine.progress.Cancelled`);
- a job whose process died (a restarted server, a killed trainer) is marked
  failed by :func:`engine.train.jobs.mark_stale_jobs` when jobs are listed;
- pages show the newest finished result of a kind at once, stale when its key
  differs from the one asked for now (:func:`last_result`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.actions import acting_as, current_actor
from engine.errors import MixplanError
from engine.progress import Cancelled, ProgressCallback, ProgressEvent
from engine.store import Job, Project, session_scope
from engine.store.models import utcnow
from engine.store.queries import project_id
from engine.train.jobs import aware, mark_stale_jobs, process_alive

log = logging.getLogger(__name__)

LIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
STORE_EVERY_SECONDS = 0.5  # progress events faster than this are kept in memory, not written
HEARTBEAT_SECONDS = 10.0
LONG_KINDS = ("fit", "budget-sweep")  # run in their own lane, in a child interpreter
CHILD = ("import pickle, sys; from engine.services.jobs import run_job; "
         "run_job(*pickle.loads(sys.stdin.buffer.read()))")

Work = Callable[[ProgressCallback], dict]


@dataclass(frozen=True)
class JobInfo:
    """What a page shows of a job."""

    id: int
    project: str
    kind: str
    state: str
    progress: float
    message: str
    key: str | None
    settings: dict
    result: dict | None
    error: str | None
    cancel_requested: bool
    pid: int | None
    created_at: datetime
    updated_at: datetime | None

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def seconds(self) -> float:
        end = self.updated_at or self.created_at
        return max(0.0, (end - self.created_at).total_seconds())


def job_key(kind: str, project: str, settings: dict, data_hash: str = "") -> str:
    """Same kind, project, settings and data: same key (settings are hashed in canonical JSON)."""
    text = json.dumps([kind, project, settings, data_hash], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _info(job: Job, project: str) -> JobInfo:
    config = dict(job.config or {})
    return JobInfo(job.id, project, job.kind, job.state, float(job.progress or 0.0), job.message or "", job.key,
                   config.get("settings", {}), job.result, job.error, bool(job.cancel_requested), job.pid,
                   aware(job.created_at), aware(job.updated_at))


def get_job(job_id: int, *, url: str | None = None) -> JobInfo | None:
    with session_scope(url) as s:
        row = s.execute(select(Job, Project.name).join(Project, Project.id == Job.project_id)
                        .where(Job.id == job_id)).first()
        return None if row is None else _info(*row)


def list_jobs(project: str | None = None, *, kinds: tuple[str, ...] | None = None, live_only: bool = False,
              limit: int = 50, url: str | None = None) -> list[JobInfo]:
    """Newest first, after marking jobs whose process died (so the list never shows a ghost as running)."""
    mark_stale_jobs(url)
    with session_scope(url) as s:
        query = select(Job, Project.name).join(Project, Project.id == Job.project_id).order_by(Job.id.desc())
        if project is not None:
            query = query.where(Project.name == project)
        if kinds:
            query = query.where(Job.kind.in_(kinds))
        if live_only:
            query = query.where(Job.state.in_(LIVE))
        return [_info(job, name) for job, name in s.execute(query.limit(limit))]


def live_job(key: str, *, url: str | None = None) -> JobInfo | None:
    """The queued or running job with ``key``, if any."""
    with session_scope(url) as s:
        row = s.execute(select(Job, Project.name).join(Project, Project.id == Job.project_id)
                        .where(Job.key == key, Job.state.in_(LIVE))).first()
        return None if row is None else _info(*row)


def latest_job(key: str, *, url: str | None = None) -> JobInfo | None:
    """The newest job with ``key`` in any state (a page shows its failure instead of asking again)."""
    with session_scope(url) as s:
        row = s.execute(select(Job, Project.name).join(Project, Project.id == Job.project_id)
                        .where(Job.key == key).order_by(Job.id.desc()).limit(1)).first()
        return None if row is None else _info(*row)


def last_result(project: str, kind: str, key: str, *, url: str | None = None) -> tuple[JobInfo | None, bool]:
    """(newest finished ``kind`` job with a result, stale): the one with ``key`` when it exists (not stale),
    else the newest of the kind (stale: its settings or data differ from what is asked now)."""
    with session_scope(url) as s:
        base = (select(Job, Project.name).join(Project, Project.id == Job.project_id)
                .where(Project.name == project, Job.kind == kind, Job.state == "done")
                .order_by(Job.id.desc()).limit(1))
        row = s.execute(base.where(Job.key == key)).first()
        if row is not None:
            return _info(*row), False
        row = s.execute(base).first()
        return (None, False) if row is None else (_info(*row), True)


def record_result(project: str, kind: str, key: str, settings: dict, result: dict, *,
                  url: str | None = None) -> int:
    """Store work done elsewhere (e.g. the demo's plan, computed at load) as a finished job."""
    with session_scope(url) as s:
        job = Job(project_id=project_id(s, project), kind=kind, key=key, state="done", progress=1.0,
                  config={"settings": settings, "host": socket.gethostname()}, pid=os.getpid(),
                  heartbeat_at=utcnow(), result=result, message="done")
        s.add(job)
        s.flush()
        return job.id


def request_cancel(job_id: int, *, url: str | None = None) -> None:
    """Ask a job to stop: runner jobs stop at their next progress event; a training process of this
    host is sent SIGTERM (its own process group, as the dashboard starts it)."""
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        if job is None or job.state not in LIVE:
            return
        job.cancel_requested = True
        in_runner = (job.config or {}).get("runner", False)
        pid, host = job.pid, (job.config or {}).get("host")
    if not in_runner and pid and host == socket.gethostname() and pid != os.getpid() and process_alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        with session_scope(url) as s:
            job = s.get(Job, job_id)
            job.state, job.error = "cancelled", "cancelled by the user"


def _finish(job_id: int, url: str | None, *, state: str, message: str, result: dict | None = None,
            error: str | None = None) -> None:
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        job.state, job.message, job.error, job.heartbeat_at = state, message, error, utcnow()
        if state == "done":
            job.progress, job.result = 1.0, result


def run_job(job_id: int, work: Work, url: str | None, actor: str | None = None) -> None:
    """Run ``work`` for the job row ``job_id``: state, throttled progress, cancellation, result or error.

    Module-level so a worker process can run it (``work`` must then be picklable). ``actor``: who asked for
    the job (:func:`engine.actions.current_actor` where it was submitted); the actions it records are theirs.
    """
    if actor is not None:
        with acting_as(actor):
            return run_job(job_id, work, url)
    last_store = [0.0]

    def progress(event: ProgressEvent) -> None:
        now = time.monotonic()
        if now - last_store[0] < STORE_EVERY_SECONDS and event.done < event.total:
            return
        last_store[0] = now
        with session_scope(url) as s:
            job = s.get(Job, job_id)
            job.progress = event.fraction
            job.message = f"{event.stage}: {event.message}" if event.message else event.stage
            job.heartbeat_at = utcnow()
            cancel = bool(job.cancel_requested)
        if cancel:
            raise Cancelled(f"job {job_id} cancelled")

    try:
        with session_scope(url) as s:
            job = s.get(Job, job_id)
            if job.cancel_requested:
                raise Cancelled(f"job {job_id} cancelled before it started")
            job.state, job.message, job.heartbeat_at = "running", "started", utcnow()
        result = work(progress)
        _finish(job_id, url, state="done", result=result or {}, message="done")
    except Cancelled:
        _finish(job_id, url, state="cancelled", error="cancelled by the user", message="cancelled")
    except MixplanError as error:
        _finish(job_id, url, state="failed", error=str(error), message="failed")
    except Exception as error:  # noqa: BLE001  a worker must never die silently: the row says what broke
        log.exception("job %s failed", job_id)
        _finish(job_id, url, state="failed", error=f"{type(error).__name__}: {error}", message="failed")


class JobRunner:
    """Runs jobs and keeps their rows current: quick ones (plan, suggest, loading laws) in threads of this
    process, long ones (fit, budget sweep) in one worker process, each lane with its own workers.

    One runner per dashboard server (the app keeps it in ``st.cache_resource``).
    Work is a function of one argument, the progress callback, returning a small
    JSON-able dict (the job's result); long work must be picklable. A
    :class:`MixplanError` becomes the job's error text; any other exception too,
    logged with its traceback.
    """

    def __init__(self, max_workers: int = 2, long_workers: int = 1, long_jobs_in_process: bool = True):
        # Two lanes: a fit or a budget sweep (minutes) never makes a plan (seconds) wait for a worker.
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="mixplan-job")
        self._long_pool = ThreadPoolExecutor(max_workers=long_workers, thread_name_prefix="mixplan-long-job")
        self._in_process_long = long_jobs_in_process
        self._running: set[tuple[int, str | None]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beater = threading.Thread(target=self._beat_forever, name="mixplan-job-heartbeat", daemon=True)
        self._beater.start()

    def submit(self, project: str, kind: str, settings: dict, work: Work, *, data_hash: str = "",
               url: str | None = None) -> tuple[int, bool]:
        """Start ``work`` as a job, or join the live job with the same key. Returns (job id, joined)."""
        key = job_key(kind, project, settings, data_hash)
        actor = current_actor()  # the signed-in user of the page asking; the worker threads have no session
        mark_stale_jobs(url)
        existing = live_job(key, url=url)
        if existing is not None:
            return existing.id, True
        try:
            with session_scope(url) as s:
                job = Job(project_id=project_id(s, project), kind=kind, key=key, state="queued", progress=0.0,
                          config={"settings": settings, "data_hash": data_hash, "host": socket.gethostname(),
                                  "runner": True},
                          pid=os.getpid(), heartbeat_at=utcnow(), message="waiting for a free worker")
                s.add(job)
                s.flush()
                job_id = job.id
        except IntegrityError:  # another tab or process inserted the same key a moment ago
            existing = live_job(key, url=url)
            if existing is None:
                raise
            return existing.id, True
        if kind in LONG_KINDS and self._in_process_long:
            self._long_pool.submit(self._run_in_process, job_id, work, url, actor)
        else:
            (self._long_pool if kind in LONG_KINDS else self._pool).submit(self._run, job_id, work, url, actor)
        return job_id, False

    def _run(self, job_id: int, work: Work, url: str | None, actor: str | None = None) -> None:
        with self._lock:
            self._running.add((job_id, url))
        try:
            run_job(job_id, work, url, actor)
        finally:
            with self._lock:
                self._running.discard((job_id, url))

    def _run_in_process(self, job_id: int, work: Work, url: str | None, actor: str | None = None) -> None:
        """A long job in a child interpreter (a fit never holds the server's GIL); this thread keeps the
        heartbeat and fails the job when the child dies without finishing it (out of memory, killed).

        The child gets the pickled work on stdin: our own object from this process, never user input.
        A plain ``python -c`` child, not multiprocessing: spawn would re-run Streamlit's page as __main__.
        """
        with self._lock:
            self._running.add((job_id, url))
        try:
            source_root = str(Path(__file__).resolve().parents[2])  # this engine, even where another is installed
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))}
            child = subprocess.run([sys.executable, "-c", CHILD], input=pickle.dumps((job_id, work, url, actor)), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
            job = get_job(job_id, url=url)
            if job is not None and job.live:
                why = child.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {child.returncode}"]
                _finish(job_id, url, state="failed", message="failed",
                        error=f"the worker process stopped ({why[0]}); ask for it again.")
        finally:
            with self._lock:
                self._running.discard((job_id, url))

    def _beat_forever(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                running = list(self._running)
            for job_id, url in running:
                try:
                    with session_scope(url) as s:
                        job = s.get(Job, job_id)
                        if job is not None and job.state in LIVE:
                            job.heartbeat_at = utcnow()
                except Exception:  # noqa: BLE001  a missed beat is retried in HEARTBEAT_SECONDS
                    log.exception("heartbeat of job %s failed", job_id)

    def shutdown(self, wait: bool = True) -> None:
        self._stop.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._long_pool.shutdown(wait=wait, cancel_futures=True)
