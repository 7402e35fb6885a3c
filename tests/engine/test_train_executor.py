"""Sweep executor: worker processes, runs landing as they finish, a failing run recorded without stopping others."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from engine.cli import app
from engine.services.training import export_runs, sweep, sweep_specs
from engine.store import Job, Run, session_scope
from engine.train.loop import TrainSpec

sys.path.insert(0, str(Path(__file__).parent))
from sweep_helpers import eval_log, kills, make_data, measurement_counts, write_faults  # noqa: E402


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


def _kill_specs(tmp_path, n: int) -> list[TrainSpec]:
    data = make_data(tmp_path)
    base = TrainSpec(project="p", data_dir=data, name="", tokens=4096, model="micro", seq_len=32, batch_size=8,
                     evals=4, eval_sequences=4, checkpoint_seconds=0)
    return sweep_specs(base, n=n, budgets=[4096], seed=0)


def test_a_worker_killed_mid_run_is_retried_and_resumes_from_its_checkpoint(tmp_path, sqlite_url, monkeypatch):
    """The worker training run 0 is SIGKILLed (as by the OOM killer) right after its second evaluation was
    committed, once: that run alone is restarted, resumes from the checkpoint of its first evaluation
    (its first write after the restart is the second evaluation, not the first), and nothing is duplicated."""
    specs = _kill_specs(tmp_path, 2)
    victim = specs[0].name
    for key, value in write_faults(tmp_path / "faults", {victim: {"at_eval": 2, "times": 1}}).items():
        monkeypatch.setenv(key, value)
    outcomes = sweep(specs, workers=2, url=sqlite_url)
    assert sorted(o.status for o in outcomes) == ["complete", "complete"]
    assert kills(tmp_path / "faults", victim) == 1
    writes = eval_log(tmp_path / "faults")[victim]
    pids = list(dict.fromkeys(pid for pid, _ in writes))
    assert len(pids) == 2, writes  # the killed worker, then its replacement
    first, second = ([t for p, t in writes if p == pid] for pid in pids)
    assert len(first) == 2 and second[0] == first[1], writes  # resumed at evaluation 2, not from scratch
    assert len(eval_log(tmp_path / "faults")[specs[1].name]) == 4  # the other run was never restarted
    counts = measurement_counts(sqlite_url)
    assert counts[victim] == counts[specs[1].name] == (12, 12)  # 4 evaluations x 3 targets, exactly once
    with session_scope(sqlite_url) as s:
        assert {r.status for r in s.scalars(select(Run))} == {"complete"}


def test_a_run_that_always_kills_its_worker_fails_alone(tmp_path, sqlite_url, monkeypatch):
    """One run's worker dies on every attempt: after its retries it is failed with the reason; the
    other runs (queued behind it on the same worker slots) complete and are never charged for it."""
    specs = _kill_specs(tmp_path, 3)
    crasher = specs[0].name
    for key, value in write_faults(tmp_path / "faults", {crasher: {"at_eval": 1, "times": None}}).items():
        monkeypatch.setenv(key, value)
    outcomes = {o.name: o for o in sweep(specs, workers=1, url=sqlite_url, max_retries=1)}
    assert outcomes[crasher].status == "failed"
    assert "died 2 times" in outcomes[crasher].error and "SIGKILL" in outcomes[crasher].error
    assert {n: o.status for n, o in outcomes.items() if n != crasher} == {s.name: "complete" for s in specs[1:]}
    writes = eval_log(tmp_path / "faults")
    assert len({pid for pid, _ in writes[crasher]}) == 2  # tried twice, in two processes
    with session_scope(sqlite_url) as s:
        runs = {r.name: r.status for r in s.scalars(select(Run))}
        sweep_job = s.scalar(select(Job).where(Job.kind == "sweep"))
    assert runs == {crasher: "failed", specs[1].name: "complete", specs[2].name: "complete"}
    assert sweep_job.state == "done" and "1 of 3 runs failed" in sweep_job.error
