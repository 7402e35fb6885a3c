"""Run many proxy trainings: a local pool of worker processes.

Each worker is a fresh (spawned) process with its own database engine and one
torch thread by default, so N workers use N cores. A run lands in the store as
soon as it finishes; a run that fails is recorded as failed with its error and
the others go on. A sweep has its own job row whose progress is the share of
runs finished and whose heartbeat the parent keeps while it waits.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable

from engine.errors import MixplanError
from engine.store import queries, session_scope
from engine.store.models import Job
from engine.train import records
from engine.train.jobs import beat, start_job
from engine.train.loop import TrainSpec, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    name: str
    status: str  # complete | skipped | failed
    error: str | None = None
    final_losses: dict[str, float] | None = None
    seconds: float = 0.0


def _spec_fields(spec: TrainSpec) -> dict:
    """What a run row can say about a spec that never started (e.g. it names a missing domain)."""
    return {
        "mixture": dict(spec.mixture), "tokens": spec.tokens, "seed": spec.seed, "seq_len": spec.seq_len,
        "framework": "mixplan", "method": spec.method, "provenance": {"spec_hash": spec.fingerprint()},
    }


def run_one(spec_doc: dict, url: str | None, threads: int | None) -> RunOutcome:
    """Train one spec in this process; never raises for a failed run (the outcome says it)."""
    from engine.store import dispose_engines

    dispose_engines()  # an engine inherited from a parent process must not be shared
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec = TrainSpec.from_dict(spec_doc)
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        result = train(spec, url=url, resume=True)
    except Exception as exc:  # noqa: BLE001 - any failure of one run is recorded, not fatal to the sweep
        error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, MixplanError) else str(exc)
        records.record_failed_run(spec.project, spec.name, _spec_fields(spec), {"spec": spec_doc}, error, url)
        log.warning("run %s failed: %s", spec.name, error)
        return RunOutcome(spec.name, "failed", error)
    return RunOutcome(spec.name, result.status, None, result.final_losses, result.seconds)


def run_sweep(
    specs: list[TrainSpec],
    *,
    workers: int = 1,
    threads_per_worker: int | None = 1,
    url: str | None = None,
    on_result: Callable[[RunOutcome, int, int], None] | None = None,
    heartbeat_seconds: float = 5.0,
) -> list[RunOutcome]:
    """Train every spec on ``workers`` processes; outcomes in completion order."""
    if not specs:
        return []
    project = specs[0].project
    with session_scope(url) as s:
        sweep_job = start_job(s, queries.project_id(s, project), None, "sweep",
                              {"runs": [spec.name for spec in specs], "workers": workers})
        job_id = sweep_job.id
    outcomes: list[RunOutcome] = []
    try:
        if workers <= 1:  # no pool: spawning a process costs seconds of imports for nothing
            for spec in specs:
                _collect(run_one(spec.to_dict(), url, threads_per_worker), outcomes, len(specs), on_result)
                _beat(job_id, len(outcomes) / len(specs), url)
        else:
            _run_pool(specs, workers, threads_per_worker, url, job_id, outcomes, on_result, heartbeat_seconds)
    except BaseException as exc:
        _close_sweep_job(job_id, "failed", f"{type(exc).__name__}: {exc}", url)
        raise
    failed = [o for o in outcomes if o.status == "failed"]
    _close_sweep_job(job_id, "done", f"{len(failed)} of {len(specs)} runs failed" if failed else None, url)
    return outcomes


MAX_WORKER_DEATHS = 2


def _run_pool(specs, workers, threads, url, job_id, outcomes, on_result, heartbeat_seconds) -> None:
    """Run specs on a spawned pool; a worker that dies (OOM killer, segfault, kill -9) breaks the
    whole pool in concurrent.futures, so its in-flight runs are retried on a fresh pool (they resume
    from their checkpoints) and recorded as failed after MAX_WORKER_DEATHS deaths."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited engines or threads
    queue = [spec.to_dict() for spec in specs]
    deaths: dict[str, int] = {}
    while queue:
        broken: list[dict] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: dict[Future, dict] = {pool.submit(run_one, doc, url, threads): doc for doc in queue}
            queue = []
            while pending:
                done, _ = wait(pending, timeout=heartbeat_seconds, return_when=FIRST_COMPLETED)
                for future in done:
                    doc = pending.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        broken.append(doc)
                        continue
                    _collect(outcome, outcomes, len(specs), on_result)
                _beat(job_id, len(outcomes) / len(specs), url)
        for doc in broken:
            name = doc["name"]
            deaths[name] = deaths.get(name, 0) + 1
            if deaths[name] < MAX_WORKER_DEATHS:
                log.warning("the worker running %s died; retrying it on a fresh pool", name)
                queue.append(doc)
                continue
            error = f"its worker process died {deaths[name]} times (killed, out of memory or crashed)"
            spec = TrainSpec.from_dict(doc)
            records.record_failed_run(spec.project, spec.name, _spec_fields(spec), {"spec": doc}, error, url)
            _collect(RunOutcome(name, "failed", error), outcomes, len(specs), on_result)


def _collect(outcome: RunOutcome, outcomes: list[RunOutcome], total: int,
             on_result: Callable[[RunOutcome, int, int], None] | None) -> None:
    outcomes.append(outcome)
    if on_result is not None:
        on_result(outcome, len(outcomes), total)


def _beat(job_id: int, progress: float, url: str | None) -> None:
    with session_scope(url) as s:
        beat(s, job_id, progress)


def _close_sweep_job(job_id: int, state: str, error: str | None, url: str | None) -> None:
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        job.state, job.error = state, error
        if state == "done":
            job.progress = 1.0
