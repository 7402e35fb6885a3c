"""Sweep executor: worker processes, runs landing as they finish, a failing run recorded without stopping others."""

from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy import select
from typer.testing import CliRunner

from engine.cli import app
from engine.services.training import export_runs, sweep, sweep_specs
from engine.store import Job, Run, session_scope
from engine.train.data import prepare_data
from engine.train.loop import TrainSpec


def make_data(tmp_path) -> str:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = {"alpha": "abc abd abe " * 60, "beta": "0123 4567 89 " * 60, "gamma": "<a><b></b></a> " * 60}
    sources = {}
    for name, text in texts.items():
        (corpus / f"{name}.jsonl").write_text("".join(json.dumps({"text": f"{i} {text}"}) + "\n" for i in range(6)))
        sources[name] = [str(corpus / f"{name}.jsonl")]
    prepare_data(tmp_path / "prep", sources, val_fraction=0.3)
    return str(tmp_path / "prep")


def test_one_failing_run_is_recorded_and_the_others_complete(tmp_path, sqlite_url):
    data = make_data(tmp_path)
    base = TrainSpec(project="p", data_dir=data, name="", tokens=2048, model="micro", seq_len=32, batch_size=8,
                     evals=2, eval_sequences=4)
    specs = sweep_specs(base, n=2, budgets=[2048], seed=0)
    specs.append(replace(specs[0], name="broken", mixture={"alpha": 0.5, "nope": 0.5}))
    seen = []
    outcomes = sweep(specs, workers=2, url=sqlite_url, on_result=lambda o, done, total: seen.append((done, total)))
    by_name = {o.name: o for o in outcomes}
    assert by_name["broken"].status == "failed" and "nope" in by_name["broken"].error
    assert sorted(o.status for o in outcomes) == ["complete", "complete", "failed"]
    assert seen[-1] == (3, 3)
    with session_scope(sqlite_url) as s:
        runs = {r.name: r.status for r in s.scalars(select(Run))}
        jobs = list(s.scalars(select(Job).order_by(Job.id)))
    assert runs == {specs[0].name: "complete", specs[1].name: "complete", "broken": "failed"}
    broken_job = next(j for j in jobs if j.kind == "train" and j.state == "failed")
    assert "nope" in broken_job.error
    sweep_job = next(j for j in jobs if j.kind == "sweep")
    assert sweep_job.state == "done" and "1 of 3 runs failed" in sweep_job.error
    # Re-running the sweep does no work for the complete runs.
    again = sweep(specs[:2], workers=1, url=sqlite_url)
    assert [o.status for o in again] == ["skipped", "skipped"]
    runs_path, domains_path = export_runs("p", tmp_path / "export", url=sqlite_url)
    lines = [json.loads(line) for line in runs_path.read_text().splitlines()]
    assert {line["run_id"] for line in lines} == {specs[0].name, specs[1].name}
    assert {m["target"] for m in lines[0]["measurements"]} == {"alpha", "beta", "gamma"}
    assert "unique_tokens" in domains_path.read_text()


def test_cli_sweep_and_jobs(tmp_path, sqlite_url):
    data = make_data(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "--project", "q", "--data", data, "--n", "1", "--budgets", "2048",
                                      "--model", "micro", "--seq-len", "32", "--evals", "2", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "[1/1]" in result.output and "complete" in result.output
    jobs = CliRunner().invoke(app, ["jobs", "--json", "--db", sqlite_url])
    states = sorted((j["kind"], j["state"]) for j in json.loads(jobs.stdout))
    assert states == [("sweep", "done"), ("train", "done")]


def test_a_worker_killed_mid_run_is_retried_and_the_sweep_completes(tmp_path, sqlite_url):
    """SIGKILL one worker process (as the OOM killer would): concurrent.futures breaks the whole pool;
    the executor retries the runs that were in flight on a fresh pool, which resume and complete."""
    import os
    import signal
    import threading
    import time

    data = make_data(tmp_path)
    base = TrainSpec(project="p", data_dir=data, name="", tokens=60_000, model="micro", seq_len=32, batch_size=8,
                     evals=4, eval_sequences=4)
    specs = sweep_specs(base, n=2, budgets=[60_000], seed=0)
    killed: list[int] = []

    def kill_first_running_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            with session_scope(sqlite_url) as s:
                job = s.scalar(select(Job).where(Job.kind == "train", Job.state == "running", Job.progress > 0))
                pid = job.pid if job is not None else None
            if pid and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_running_worker)
    killer.start()
    outcomes = sweep(specs, workers=2, url=sqlite_url)
    killer.join()
    assert killed, "no worker was seen running: the run was too short to kill"
    assert sorted(o.status for o in outcomes) == ["complete", "complete"]
    with session_scope(sqlite_url) as s:
        assert {r.status for r in s.scalars(select(Run))} == {"complete"}
