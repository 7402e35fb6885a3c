"""Sweeps on a Ray cluster: each proxy run is one Ray task with declared resources.

- Resources: ``num_cpus`` = torch threads per run (1 by default); ``num_gpus=1`` when
  the run asks for ``--device cuda``. Other runs get no GPU (Ray hides the devices
  from them, so ``--device auto`` trains on the CPU).
- Failures belong to the run: a run that raises is recorded as failed by its task;
  a task whose worker process dies (OOM killer, node lost, kill -9) is retried by
  Ray itself (``max_retries``), and the retry resumes from the run's checkpoint in
  ``checkpoint_dir``, a path every node must be able to read.
- Results: the task writes the measurements through the database URL as they are
  measured, the driver receives only the run's small outcome. Writing through the
  URL keeps a run's partial learning curve in the store when a worker or the driver
  dies, and shows progress live; the writes are upserts per (run, target, tokens
  seen), so a retried attempt that re-evaluates a point rewrites the same row:
  every measurement lands exactly once. The price: every node must reach the
  database, so a SQLite file is refused on a cluster of more than one node.
- Code: the driver's ``engine`` package is shipped to the workers (``py_modules``),
  so the nodes run exactly the driver's code; they need mixplan's dependencies.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from sqlalchemy import select

from engine.config import Settings
from engine.errors import InputError
from engine.store import Job, Run, queries, session_scope
from engine.train.executor import RunOutcome, record_lost_run, run_one

log = logging.getLogger(__name__)

ENGINE_DIR = Path(__file__).resolve().parents[1]
RETRY_MARKERS = ".ray-attempts"


def ray_available() -> bool:
    """Whether the optional Ray extra (``pip install 'mixplan[ray]'``) is installed here."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise InputError("the Ray executor needs Ray, which is not installed.",
                         hint="pip install 'mixplan[ray]', or use --executor local.") from exc
    return ray


def _train_task(doc: dict, url: str, threads: int | None, checkpoint_dir: str) -> dict:
    """Body of one Ray task (runs on a worker node)."""
    import ray

    os.environ["MIXPLAN_CHECKPOINT_DIR"] = checkpoint_dir  # loop.checkpoint_path reads the settings
    marker = Path(checkpoint_dir) / RETRY_MARKERS / ray.get_runtime_context().get_task_id()
    if marker.exists():
        _supersede_dead_attempt(doc, url)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    outcome = run_one(doc, url, threads)
    marker.unlink(missing_ok=True)
    return outcome.to_dict()


def _supersede_dead_attempt(doc: dict, url: str) -> None:
    """Ray keeps a task's id across retries and runs one attempt at a time: a 'running' job of this
    run at the start of a retry belongs to the attempt whose worker died. Without this, a retry on
    another node would wait for that job's heartbeat to go stale before it could resume."""
    with session_scope(url) as s:
        run = s.scalar(select(Run).where(Run.project_id == queries.project_id(s, doc["project"]),
                                         Run.name == doc["name"]))
        if run is None:
            return
        for job in s.scalars(select(Job).where(Job.run_id == run.id, Job.state == "running")):
            job.state = "failed"
            job.error = "its Ray worker died; Ray retried the run, which resumes from its checkpoint."


def _check_cluster(ray, docs: list[dict], url: str) -> None:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if url.startswith("sqlite") and len(nodes) > 1:
        raise InputError(
            f"the Ray cluster has {len(nodes)} nodes and the store is a SQLite file only this machine can open.",
            hint="use a PostgreSQL store every node can reach: --db postgresql+psycopg://USER@HOST/DB.",
        )
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus == 0 and any(doc.get("device") == "cuda" for doc in docs):
        raise InputError("the runs ask for --device cuda but the Ray cluster has no GPU.",
                         hint="use --device auto or cpu, or add GPU nodes to the cluster.")


def run_on_ray(docs: list[dict], *, address: str | None, url: str | None, threads: int | None,
               checkpoint_dir: str | None, max_retries: int, collect: Callable[[RunOutcome], None],
               keep_alive: Callable[[], None], heartbeat_seconds: float) -> None:
    """Submit every run as a task, collect outcomes as they finish; stopping cancels the rest."""
    ray = _import_ray()
    settings = Settings.from_env()
    url = url or settings.database_url  # the workers must use the driver's store, not their own default
    checkpoint_dir = str(Path(checkpoint_dir or settings.checkpoint_dir).resolve())
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, runtime_env={"py_modules": [str(ENGINE_DIR)]},
                 logging_level=logging.WARNING, log_to_driver=True)
    pending: dict = {}
    try:
        _check_cluster(ray, docs, url)
        task = ray.remote(_train_task)
        for doc in docs:
            ref = task.options(
                num_cpus=threads or 1, num_gpus=1 if doc.get("device") == "cuda" else 0,
                max_retries=max_retries, retry_exceptions=False, name=f"mixplan:{doc['name']}",
            ).remote(doc, url, threads, checkpoint_dir)
            pending[ref] = doc
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=heartbeat_seconds)
            for ref in ready:
                doc = pending.pop(ref)
                try:
                    collect(RunOutcome(**ray.get(ref)))
                except ray.exceptions.RayTaskError as exc:  # raised outside run_one's guard: not retried
                    cause = exc.cause if exc.cause is not None else exc
                    collect(record_lost_run(doc, f"{type(cause).__name__}: {cause}", url))
                except ray.exceptions.RayError as exc:  # the worker died on every attempt
                    collect(record_lost_run(
                        doc, f"its Ray worker died {max_retries + 1} times (last: {type(exc).__name__})", url))
            keep_alive()
    finally:
        for ref in pending:  # stopped early: the cluster must not keep training for nobody
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
