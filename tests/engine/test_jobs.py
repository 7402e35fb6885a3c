"""The job runner: results, shared keys, cancellation, failures, dead processes, stale results."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actions import acting_as, list_actions, record_action
from engine.errors import InputError
from engine.progress import report
from engine.services.jobs import JobRunner, get_job, job_key, last_result, list_jobs, record_result, request_cancel
from engine.services.projects import create_project
from engine.store import Job, get_engine, session_scope


def wait_finished(job_id: int, url: str, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = get_job(job_id, url=url)
        if job.state in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {get_job(job_id, url=url).state}")


@pytest.fixture
def runner():
    r = JobRunner(max_workers=2, long_jobs_in_process=False)  # the tests' work is local functions
    yield r
    r.shutdown()


def test_a_job_stores_progress_and_result(db_url, runner):
    create_project("p", url=db_url)

    def work(progress):
        for i in range(3):
            report(progress, "step", i, 3)
        return {"answer": 42}

    job_id, joined = runner.submit("p", "fit", {"objective": "mean"}, work, url=db_url)
    job = wait_finished(job_id, db_url)
    assert not joined
    assert (job.state, job.result, job.progress) == ("done", {"answer": 42}, 1.0)
    assert job.settings == {"objective": "mean"}


def test_two_tabs_asking_for_the_same_work_share_one_job(db_url, runner):
    create_project("p", url=db_url)
    release = threading.Event()
    calls = []

    def work(progress):
        calls.append(1)
        release.wait(20)
        return {}

    first, joined_first = runner.submit("p", "fit", {"laws": ["a"]}, work, data_hash="h", url=db_url)
    second, joined_second = runner.submit("p", "fit", {"laws": ["a"]}, work, data_hash="h", url=db_url)
    other, _ = runner.submit("p", "fit", {"laws": ["b"]}, work, data_hash="h", url=db_url)
    release.set()
    wait_finished(first, db_url)
    wait_finished(other, db_url)
    assert first == second and (joined_first, joined_second) == (False, True)
    assert other != first
    assert len(calls) == 2
    again, joined_again = runner.submit("p", "fit", {"laws": ["a"]}, work, data_hash="h", url=db_url)
    assert again != first and not joined_again  # the key is unique only while a job is live
    wait_finished(again, db_url)


def test_the_database_refuses_a_second_live_job_with_one_key(db_url):
    create_project("p", url=db_url)
    from sqlalchemy.exc import IntegrityError

    from engine.store import Project

    with session_scope(db_url) as s:
        pid = s.scalar(select(Project.id))
        s.add(Job(project_id=pid, kind="fit", key="k", state="running"))
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            s.add(Job(project_id=pid, kind="fit", key="k", state="queued"))
    with session_scope(db_url) as s:
        s.add(Job(project_id=pid, kind="fit", key="k", state="done"))  # finished jobs may repeat a key


def test_cancel_stops_the_work_at_its_next_progress_event(db_url, runner):
    create_project("p", url=db_url)
    started = threading.Event()

    def work(progress):
        started.set()
        for i in range(10_000):
            report(progress, "loop", i, 10_000)
            time.sleep(0.01)
        return {"finished": True}

    job_id, _ = runner.submit("p", "sweep", {}, work, url=db_url)
    started.wait(10)
    request_cancel(job_id, url=db_url)
    job = wait_finished(job_id, db_url)
    assert job.state == "cancelled" and job.result is None


def test_a_failing_job_keeps_the_error_for_the_page(db_url, runner):
    create_project("p", url=db_url)

    def work(progress):
        raise InputError("the budget is too large", hint="lower the Token budget")

    job = wait_finished(runner.submit("p", "plan", {}, work, url=db_url)[0], db_url)
    assert job.state == "failed" and "the budget is too large" in job.error


def test_a_job_whose_process_died_is_marked_failed(db_url):
    create_project("p", url=db_url)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from engine.store import Project
    import socket

    with session_scope(db_url) as s:
        pid = s.scalar(select(Project.id))
        s.add(Job(project_id=pid, kind="plan", key="k", state="running", pid=dead.pid,
                  config={"host": socket.gethostname(), "runner": True}))
    [job] = list_jobs("p", url=db_url)
    assert job.state == "failed" and "stopped unexpectedly" in job.error and "ask for it again" in job.error


def test_last_result_is_stale_when_the_key_differs(db_url):
    create_project("p", url=db_url)
    key_a = job_key("plan", "p", {"budget": 1}, "h")
    key_b = job_key("plan", "p", {"budget": 2}, "h")
    assert key_a != key_b and key_a == job_key("plan", "p", {"budget": 1}, "h")
    assert last_result("p", "plan", key_a, url=db_url) == (None, False)
    record_result("p", "plan", key_a, {"budget": 1}, {"x": 1}, url=db_url)
    job, stale = last_result("p", "plan", key_a, url=db_url)
    assert job.result == {"x": 1} and not stale
    job, stale = last_result("p", "plan", key_b, url=db_url)
    assert job.result == {"x": 1} and stale


def test_migrations_match_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from engine.store import Base

    engine = get_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_migration_0006_fills_the_law_fit_flags_from_the_stored_json(tmp_path):
    """A database fitted before the flags had columns keeps what its rows said (the summaries read the columns)."""
    from sqlalchemy import text

    from engine.store.queries import fit_summaries
    from engine.store.session import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    upgrade(engine, "0005")
    with engine.begin() as c:
        c.execute(text("INSERT INTO project (id, name, description, is_demo, law_overrides, created_at) "
                       "VALUES (1, 'p', '', 0, '{}', '2026-11-28 00:00:00')"))
        for fit_id, law, params, boot in [(1, "gp", '{"smooth": true}', '{"refits_skipped": false}'),
                                           (2, "exponential", '{"smooth": true}', '{"refits_skipped": true}'),
                                           (3, "lightgbm", '{"smooth": false}', '{}')]:
            c.execute(text("INSERT INTO law_fit (id, project_id, law, objective, options, params, cv_metrics, "
                           "cv_predictions, bootstrap, data_hash, seconds, created_at) VALUES (:i, 1, :law, 'mean', "
                           "'{}', :params, '{}', '{}', :boot, 'h', 1.0, '2026-11-28 00:00:00')"),
                      {"i": fit_id, "law": law, "params": params, "boot": boot})
    upgrade(engine, "head")
    with Session(engine) as s:
        flags = {f.law: (f.smooth, f.refits_skipped) for f in fit_summaries(s, 1, "mean")}
    engine.dispose()
    assert flags == {"gp": (True, False), "exponential": (True, True), "lightgbm": (False, False)}


def test_a_server_killed_mid_job_leaves_a_failed_job_and_the_results_before_it(tmp_path):
    """What a restarted dashboard sees: earlier results stay, the job that was running shows as failed."""
    url = f"sqlite:///{tmp_path / 'restart.sqlite'}"
    create_project("p", url=url)
    record_result("p", "plan", "k-old", {"budget": 1}, {"answer": 1}, url=url)
    script = f"""
import sys, time
from engine.progress import report
from engine.services.jobs import JobRunner
def work(progress):
    for i in range(100000):
        report(progress, "long", i, 100000)
        time.sleep(0.05)
runner = JobRunner(long_jobs_in_process=False)
job_id, _ = runner.submit("p", "fit", {{"laws": ["a"]}}, work, url={url!r})
print(job_id, flush=True)
time.sleep(600)
"""
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        job_id = int(server.stdout.readline())
        deadline = time.monotonic() + 30
        while get_job(job_id, url=url).state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        server.kill()
        server.wait()
    jobs = {j.id: j for j in list_jobs("p", url=url)}
    assert jobs[job_id].state == "failed" and "stopped unexpectedly" in jobs[job_id].error
    job, stale = last_result("p", "plan", "k-old", url=url)
    assert job.result == {"answer": 1} and not stale


def test_a_long_fit_does_not_hold_up_a_plan(sqlite_url, runner):
    create_project("p", url=sqlite_url)
    release = threading.Event()
    fit_id, _ = runner.submit("p", "fit", {}, lambda progress: release.wait(30) and {}, url=sqlite_url)
    sweep_id, _ = runner.submit("p", "budget-sweep", {}, lambda progress: release.wait(30) and {}, url=sqlite_url)
    plan_id, _ = runner.submit("p", "plan", {}, lambda progress: {"plan": 1}, url=sqlite_url)
    assert wait_finished(plan_id, sqlite_url).result == {"plan": 1}
    assert get_job(fit_id, url=sqlite_url).live and get_job(sweep_id, url=sqlite_url).state == "queued"
    release.set()
    assert wait_finished(sweep_id, sqlite_url).state == "done"


def test_a_fit_runs_in_the_worker_process_and_stores_its_report(sqlite_url, tmp_path):
    import numpy as np

    from engine.services.ingest import ingest_files
    from engine.services.tasks import fit_report_from_dict, fit_settings, fit_work

    rng = np.random.default_rng(0)
    lines = ["run_id,tokens,mix:a,mix:b,loss:a"]
    for i, p in enumerate(rng.dirichlet(np.ones(2), 12)):
        lines.append(f"r{i},1000,{p[0]:.6f},{p[1]:.6f},{2 + p[1] + rng.normal(0, .01):.5f}")
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    ingest_files("p", [tmp_path / "runs.csv"], url=sqlite_url)
    runner = JobRunner()
    try:
        settings = fit_settings("mean", ["linear"])
        with acting_as("bob@example.org"):  # the page's signed-in user: the child process records the fit as theirs
            job_id, _ = runner.submit("p", "fit", settings, fit_work("p", settings, url=sqlite_url), url=sqlite_url)
        job = wait_finished(job_id, sqlite_url, seconds=240)
    finally:
        runner.shutdown()
    assert job.state == "done", job.error
    report = fit_report_from_dict(job.result)
    assert [r.law for r in report.rows] == ["linear"] and report.default_law == "linear" and report.n_runs == 12
    with session_scope(sqlite_url) as s:
        assert {(a.kind, a.actor) for a in list_actions(s, "p") if a.kind == "fit"} == {("fit", "bob@example.org")}


def test_a_job_acts_as_whoever_submitted_it(db_url, runner):
    """The worker threads serve no session: the actions a job records belong to the page's user who asked."""
    create_project("p", url=db_url)

    def work(progress):
        with session_scope(db_url) as s:
            record_action(s, "plan", "p", {"why": "test"})
        return {}

    with acting_as("alice@example.org"):
        job_id, _ = runner.submit("p", "plan", {"budget": 1}, work, url=db_url)
    assert wait_finished(job_id, db_url).state == "done"
    with session_scope(db_url) as s:
        assert [a.actor for a in list_actions(s, "p") if a.kind == "plan"] == ["alice@example.org"]


def test_a_process_the_dashboard_starts_acts_as_its_user(sqlite_url, tmp_path, monkeypatch):
    """A detached trainer (launch_background) records its actions as the page's user, not the server's OS user."""
    from engine.services.training import launch_background

    monkeypatch.setenv("MIXPLAN_HOME", str(tmp_path / "home"))
    with acting_as("carol@example.org"):
        _, log = launch_background(["create-project", "q"], url=sqlite_url)
    deadline = time.monotonic() + 120
    while True:
        with session_scope(sqlite_url) as s:
            actions = [(a.kind, a.actor) for a in list_actions(s, "q")]
        if actions or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert actions == [("create-project", "carol@example.org")], log.read_text()
