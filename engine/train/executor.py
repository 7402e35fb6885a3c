"""Run many proxy trainings: each run in a worker process of its own, locally or on a Ray cluster.

Local executor: every run is one ``python -m engine.train.worker`` process (at most
``workers`` at a time). The worker's main module is an engine module, so it never
re-imports whatever script started the sweep (the Streamlit app, a notebook), and a
run that kills its process (OOM killer, segfault, kill -9) is charged to that run
alone: it is retried up to ``max_retries`` times, resuming from its checkpoint, then
recorded as failed while the other runs go on. A run that raises (a bad spec, a
missing domain) is recorded as failed at once: retrying cannot fix it.

Ray executor (``engine.train.ray_executor``): the same runs as Ray tasks, retried by
Ray itself.

Either way the worker writes the run's measurements into the store through the
database URL as they are measured (idempotent per run, target and tokens seen, see
``engine.train.records``); the driver only receives a small :class:`RunOutcome`.
A sweep has its own job row whose progress is the share of runs finished and whose
heartbeat the driver keeps while it waits.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from engine.actions import record_action
from engine.errors import InputError, MixplanError
from engine.store import queries, session_scope
from engine.store.models import Job
from engine.train import records
from engine.train.jobs import beat, start_job
from engine.train.loop import TrainSpec, train

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
DEFAULT_MAX_RETRIES = 2
OnResult = Callable[["RunOutcome", int, int], None]


@dataclass(frozen=True)
class RunOutcome:
    name: str
    status: str  # complete | skipped | failed
    error: str | None = None
    final_losses: dict[str, float] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


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


def record_lost_run(doc: dict, error: str, url: str | None) -> RunOutcome:
    """A run whose worker died on every attempt: a failed run row and job that say so."""
    spec = TrainSpec.from_dict(doc)
    records.record_failed_run(spec.project, spec.name, _spec_fields(spec), {"spec": doc}, error, url)
    log.warning("run %s failed: %s", spec.name, error)
    return RunOutcome(spec.name, "failed", error)


def run_sweep(
    specs: list[TrainSpec],
    *,
    workers: int = 1,
    threads_per_worker: int | None = 1,
    url: str | None = None,
    on_result: OnResult | None = None,
    heartbeat_seconds: float = 5.0,
    executor: str = "local",
    ray_address: str | None = None,
    checkpoint_dir: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> list[RunOutcome]:
    """Train every spec on ``workers`` local processes or as Ray tasks; outcomes in completion order.

    ``max_retries``: how often a run whose worker died is started again (resuming from
    its checkpoint) before it is recorded as failed. ``checkpoint_dir`` (default
    ``MIXPLAN_CHECKPOINT_DIR`` or ``$MIXPLAN_HOME/checkpoints``) must be readable by every
    node that may run a retry.
    """
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor '{executor}'.", hint=f"use one of: {', '.join(EXECUTORS)}.")
    if max_retries < 0:
        raise InputError(f"--max-retries {max_retries} is negative.", hint="use 0 or more.")
    if not specs:
        return []
    project = specs[0].project
    with session_scope(url) as s:
        sweep_job = start_job(s, queries.project_id(s, project), None, "sweep",
                              {"runs": [spec.name for spec in specs], "workers": workers, "executor": executor})
        job_id = sweep_job.id
        record_action(s, "training", project, {"sweep_job": job_id, "runs": len(specs), "executor": executor})
    outcomes: list[RunOutcome] = []

    def collect(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        if on_result is not None:
            on_result(outcome, len(outcomes), len(specs))

    def keep_alive() -> None:
        with session_scope(url) as s:
            beat(s, job_id, len(outcomes) / len(specs))

    docs = [spec.to_dict() for spec in specs]
    try:
        if executor == "ray":
            from engine.train.ray_executor import run_on_ray

            run_on_ray(docs, address=ray_address, url=url, threads=threads_per_worker, checkpoint_dir=checkpoint_dir,
                       max_retries=max_retries, collect=collect, keep_alive=keep_alive,
                       heartbeat_seconds=heartbeat_seconds)
        else:
            _run_local(docs, max(1, workers), threads_per_worker, url, checkpoint_dir, max_retries, collect,
                       keep_alive, heartbeat_seconds)
    except BaseException as exc:
        _close_sweep_job(job_id, "failed", f"{type(exc).__name__}: {exc}", url)
        raise
    failed = [o for o in outcomes if o.status == "failed"]
    _close_sweep_job(job_id, "done", f"{len(failed)} of {len(specs)} runs failed" if failed else None, url)
    return outcomes


@dataclass
class _Attempt:
    doc: dict
    number: int  # 0 for the first start, then 1, 2, ... for retries
    process: subprocess.Popen
    result_path: Path


def _worker_env(url: str | None, checkpoint_dir: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if url:  # through the environment, not argv: a PostgreSQL URL may hold a password
        env["MIXPLAN_DATABASE_URL"] = url
    if checkpoint_dir:
        env["MIXPLAN_CHECKPOINT_DIR"] = str(checkpoint_dir)
    # The worker imports `engine` from the same place as this process, installed or a checkout.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _death(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode} before reporting"


def _run_local(docs, workers, threads, url, checkpoint_dir, max_retries, collect, keep_alive,
               heartbeat_seconds) -> None:
    env = _worker_env(url, checkpoint_dir)
    queue: list[tuple[dict, int]] = [(doc, 0) for doc in docs]
    running: list[_Attempt] = []
    last_beat = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mixplan-sweep-") as scratch:
        try:
            while queue or running:
                while queue and len(running) < workers:
                    doc, number = queue.pop(0)
                    running.append(_start_worker(doc, number, threads, env, Path(scratch), len(running)))
                for attempt in [a for a in running if a.process.poll() is not None]:
                    running.remove(attempt)
                    outcome = _read_outcome(attempt)
                    if outcome is not None:
                        collect(outcome)
                        continue
                    why = _death(attempt.process.returncode)
                    if attempt.number < max_retries:
                        log.warning("the worker running %s was %s; retrying it (it resumes from its checkpoint)",
                                    attempt.doc["name"], why)
                        queue.insert(0, (attempt.doc, attempt.number + 1))
                    else:
                        collect(record_lost_run(
                            attempt.doc, f"its worker process died {attempt.number + 1} times (last: {why})", url))
                if time.monotonic() - last_beat >= heartbeat_seconds:
                    keep_alive()
                    last_beat = time.monotonic()
                time.sleep(0.05)
        finally:  # stopped (Ctrl+C, an error): no worker outlives the sweep
            for attempt in running:
                attempt.process.kill()
                attempt.process.wait()
    keep_alive()


def _start_worker(doc: dict, number: int, threads: int | None, env: dict, scratch: Path, slot: int) -> _Attempt:
    stem = scratch / f"{len(list(scratch.iterdir()))}-{slot}"
    spec_path, result_path = stem.with_suffix(".spec.json"), stem.with_suffix(".result.json")
    spec_path.write_text(json.dumps(doc), encoding="utf-8")
    command = [sys.executable, "-m", "engine.train.worker", str(spec_path), str(result_path)]
    if threads:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    return _Attempt(doc, number, process, result_path)


def _read_outcome(attempt: _Attempt) -> RunOutcome | None:
    if attempt.process.returncode != 0 or not attempt.result_path.exists():
        return None
    return RunOutcome(**json.loads(attempt.result_path.read_text(encoding="utf-8")))


def _close_sweep_job(job_id: int, state: str, error: str | None, url: str | None) -> None:
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        job.state, job.error = state, error
        if state == "done":
            job.progress = 1.0
