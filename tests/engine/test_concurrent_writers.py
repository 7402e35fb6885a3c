"""Concurrent writers and killed work, on SQLite and on the suite's real PostgreSQL.

Writers are separate processes (the way two terminals or the dashboard and the CLI meet). They start
together on a file the test creates, not after a sleep; a process is killed (SIGKILL) only once it has
written a marker file from inside the work, so "midway" is a fact, not a guess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from engine.services.fits import choose_default, fit_project
from engine.services.ingest import ingest_files
from engine.store import (IngestBatch, IngestStage, LawFit, Measurement, Plan, Project, Run, StagedMeasurement,
                          StagedRun, dispose_engines, get_engine)

REPO = Path(__file__).resolve().parents[2]
# The laws a default fit tries, cut to three fast ones in these tests (the five-process races run on
# two shared cores); which laws does not matter to what is tested: all of a set is stored, or none.
LAWS = ["linear", "exponential", "lightgbm"]
USE_FAST_LAWS = f"from engine.services import fits as _fits\n_fits.DEFAULT_LAWS = {LAWS!r}\n"


def runs_csv(path: Path, prefix: str, n: int, checkpoints: int = 1, seed: int = 0) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["run_id,tokens,mix:web,mix:code,mix:books,loss:web,loss:code"]
    for i in range(n):
        p = rng.dirichlet(np.ones(3))
        for c in range(1, checkpoints + 1):
            lines.append(f"{prefix}{i},{c * 1000},{p[0]:.6f},{p[1]:.6f},{1 - p[0] - p[1]:.6f},"
                         f"{3 - p[0] + 1 / c:.4f},{2.5 - p[1] + 1 / c:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def spawn(code: str, url: str, tmp_path: Path) -> subprocess.Popen:
    """A python process that waits for ``tmp_path/go``, then runs ``code`` against ``url``."""
    script = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        go = Path({str(tmp_path / 'go')!r})
        while not go.exists():
            time.sleep(0.01)
        URL = {url!r}
    """) + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(procs: list[subprocess.Popen]) -> list[str]:
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"a writer failed (exit {proc.returncode}):\n{err[-3000:]}"
        outs.append(out)
    return outs


def count(url: str, model, *where) -> int:
    with get_engine(url).connect() as c:
        return c.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def no_duplicate_runs(url: str) -> None:
    with get_engine(url).connect() as c:
        dupes = c.execute(select(Run.project_id, Run.name, func.count()).group_by(Run.project_id, Run.name)
                          .having(func.count() > 1)).all()
    assert not dupes, dupes


def test_concurrent_imports_into_one_new_project_all_land(db_url, tmp_path):
    get_engine(db_url)  # the schema exists before the race (as after any first use)
    files = [runs_csv(tmp_path / f"part{k}.csv", f"w{k}-", 300, checkpoints=2, seed=k) for k in range(3)]
    procs = [spawn(f"""
        from engine.services.ingest import ingest_files
        print(ingest_files("fresh", [{str(f)!r}], url=URL).runs_added)
    """, db_url, tmp_path) for f in files]
    (tmp_path / "go").touch()
    added = [int(out.strip().splitlines()[-1]) for out in finish(procs)]
    assert added == [300, 300, 300]
    assert count(db_url, Project, Project.name == "fresh") == 1
    assert count(db_url, Run) == 900 and count(db_url, Measurement) == 900 * 2 * 2
    assert count(db_url, IngestBatch) == 3
    no_duplicate_runs(db_url)


def test_an_import_and_a_fit_at_once(db_url, tmp_path):
    ingest_files("fitme", [runs_csv(tmp_path / "base.csv", "b", 24)], url=db_url)
    big = runs_csv(tmp_path / "other.csv", "o", 2000, checkpoints=3, seed=5)
    procs = [
        spawn(f"""
            from engine.services.ingest import ingest_files
            print(ingest_files("other", [{str(big)!r}], url=URL).runs_added)
        """, db_url, tmp_path),
        spawn("""
            from engine.services.fits import fit_project
            print(fit_project("fitme", laws=["linear", "exponential"], bootstrap=5, url=URL).default_law)
        """, db_url, tmp_path),
    ]
    (tmp_path / "go").touch()
    ingest_out, fit_out = finish(procs)
    assert ingest_out.strip().splitlines()[-1] == "2000"
    assert fit_out.strip().splitlines()[-1] in ("linear", "exponential")
    assert count(db_url, Run) == 24 + 2000 and count(db_url, Measurement) == 24 * 2 + 2000 * 3 * 2
    assert count(db_url, LawFit) == 2
    no_duplicate_runs(db_url)


def test_five_plans_at_once_on_a_project_without_fits_agree(db_url, tmp_path, monkeypatch):
    from engine.services import fits

    monkeypatch.setattr(fits, "DEFAULT_LAWS", LAWS)
    ingest_files("plans", [runs_csv(tmp_path / "runs.csv", "r", 12)], url=db_url)
    procs = [spawn(USE_FAST_LAWS + """
from engine.services.plans import make_project_plan
plan = make_project_plan("plans", 1e9, url=URL)
print(plan.law)
""", db_url, tmp_path) for _ in range(5)]
    (tmp_path / "go").touch()
    laws = [out.strip().splitlines()[-1] for out in finish(procs)]
    assert len(set(laws)) == 1, laws
    assert count(db_url, Plan) == 5
    with get_engine(db_url).connect() as c:
        per_law = dict(c.execute(select(LawFit.law, func.count()).group_by(LawFit.law)).all())
    assert per_law == {law: 1 for law in per_law} and set(per_law) == set(LAWS), per_law
    report = fit_project("plans", url=db_url)  # reuses the stored set
    assert all(r.reused for r in report.rows) and report.default_law == laws[0]


def wait_for(path: Path, proc: subprocess.Popen, limit_s: float = 300) -> None:
    """Until the child writes ``path`` (it then blocks), or fail with the child's output if it exits."""
    deadline = time.monotonic() + limit_s
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the child exited before the marker:\n{proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "the child never reached the marker"
        time.sleep(0.05)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_an_import_killed_midway_leaves_nothing_and_a_rerun_completes(db_url, tmp_path):
    ingest_files("keep", [runs_csv(tmp_path / "keep.csv", "k", 10)], url=db_url)
    big = runs_csv(tmp_path / "big.csv", "r", 6000, checkpoints=2, seed=3)
    marker = tmp_path / "midway"
    proc = spawn(f"""
        from engine.ingest import readers, writer
        from engine.services.ingest import ingest_files
        readers.ROWS_PER_CHUNK = 1000
        original, done = writer.BatchWriter.write_chunk, []

        def write_chunk(self, chunk, direction):
            original(self, chunk, direction)
            done.append(len(chunk))
            if len(done) == 3:  # two chunks committed to the stage, the third not: say so, then wait to be killed
                Path({str(marker)!r}).touch()
                while True:
                    time.sleep(1)

        writer.BatchWriter.write_chunk = write_chunk
        ingest_files("big", [{str(big)!r}], url=URL)
    """, db_url, tmp_path)
    (tmp_path / "go").touch()
    wait_for(marker, proc)
    kill(proc)
    dispose_engines()
    assert count(db_url, Project, Project.name == "big") == 0
    assert count(db_url, Run) == 10 and count(db_url, IngestBatch) == 1
    # The chunks before the kill were committed (no transaction held the lock for the file), but only staged.
    assert count(db_url, StagedRun) == 1000 and count(db_url, IngestStage) == 1
    if db_url.startswith("sqlite"):
        with get_engine(db_url).connect() as c:
            assert c.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    from typer.testing import CliRunner

    from engine.cli import app

    cleaned = CliRunner().invoke(app, ["db", "clean", "--json", "--db", db_url], catch_exceptions=False)
    assert cleaned.exit_code == 0 and '"removed_import_stages": 1' in cleaned.stdout, cleaned.output
    assert count(db_url, IngestStage) == count(db_url, StagedRun) == count(db_url, StagedMeasurement) == 0
    report = ingest_files("big", [big], url=db_url)
    assert report.runs_added == 6000 and count(db_url, Run) == 6010
    assert count(db_url, Measurement) == 10 * 2 + 6000 * 2 * 2
    no_duplicate_runs(db_url)
    assert count(db_url, IngestStage) == count(db_url, StagedRun) == count(db_url, StagedMeasurement) == 0


def test_a_long_import_lets_other_writers_in_and_stays_invisible_until_it_ends(db_url, tmp_path):
    """While a large import is between chunks, another process's import gets the lock at once and lands; readers
    see nothing of the large import until its last short transaction, then all of it."""
    ingest_files("keep", [runs_csv(tmp_path / "keep.csv", "k", 10)], url=db_url)
    big = runs_csv(tmp_path / "big.csv", "r", 4000, checkpoints=2, seed=4)
    midway, resume = tmp_path / "midway", tmp_path / "resume"
    proc = spawn(f"""
        from engine.ingest import readers, writer
        from engine.services.ingest import ingest_files
        readers.ROWS_PER_CHUNK = 1000
        original, calls = writer.BatchWriter.write_chunk, []

        def write_chunk(self, chunk, direction):
            calls.append(len(chunk))
            if len(calls) == 4:  # three chunks committed to the stage: say so, wait for the test's go-ahead
                Path({str(midway)!r}).touch()
                while not Path({str(resume)!r}).exists():
                    time.sleep(0.05)
            original(self, chunk, direction)

        writer.BatchWriter.write_chunk = write_chunk
        print(ingest_files("big", [{str(big)!r}], url=URL).runs_added)
    """, db_url, tmp_path)
    (tmp_path / "go").touch()
    wait_for(midway, proc)
    try:
        assert count(db_url, StagedRun) == 1500  # 3 x 1000 rows of 2 checkpoints each
        assert count(db_url, Project, Project.name == "big") == 0 and count(db_url, Run) == 10
        other_csv = runs_csv(tmp_path / "other.csv", "o", 50)
        other = spawn(f"""
            from engine.store import session
            # One try with a 5 s lock wait: a lock the large import kept longer fails this writer.
            session.BUSY_TIMEOUT_SECONDS, session.WRITE_ATTEMPTS = 5, 1
            from engine.services.ingest import ingest_files
            print(ingest_files("other", [{str(other_csv)!r}], url=URL).runs_added)
        """, db_url, tmp_path)
        (out,) = finish([other])
        assert int(out.strip().splitlines()[-1]) == 50
        assert count(db_url, Run) == 60 and count(db_url, Project, Project.name == "big") == 0
    finally:
        resume.touch()
    (out,) = finish([proc])
    assert int(out.strip().splitlines()[-1]) == 4000
    assert count(db_url, Run) == 4060 and count(db_url, Measurement) == 60 * 2 + 4000 * 2 * 2
    no_duplicate_runs(db_url)
    assert count(db_url, IngestStage) == count(db_url, StagedRun) == count(db_url, StagedMeasurement) == 0


def test_a_fit_killed_midway_stores_no_law_and_plans_use_the_whole_set(db_url, tmp_path, monkeypatch):
    from engine.services import fits

    monkeypatch.setattr(fits, "DEFAULT_LAWS", LAWS)
    ingest_files("fit", [runs_csv(tmp_path / "runs.csv", "r", 20)], url=db_url)
    marker = tmp_path / "midway"
    proc = spawn(f"""
        from engine.services import fits
        original, done = fits.fit_law, []

        def fit_law(*args, **kwargs):
            doc = original(*args, **kwargs)
            done.append(doc)
            if len(done) == 2:  # two of three laws fitted: say so, then wait to be killed
                Path({str(marker)!r}).touch()
                while True:
                    time.sleep(1)
            return doc

        fits.fit_law = fit_law
        fits.fit_project("fit", laws={LAWS!r}, url=URL)
    """, db_url, tmp_path)
    (tmp_path / "go").touch()
    wait_for(marker, proc)
    kill(proc)
    dispose_engines()
    assert count(db_url, LawFit) == 0, "a killed fit left part of its set behind"
    from engine.services.plans import make_project_plan

    plan = make_project_plan("fit", 1e9, url=db_url)
    report = fit_project("fit", url=db_url)
    assert count(db_url, LawFit) == len(LAWS) and all(r.reused for r in report.rows)
    assert plan.law == choose_default(report.rows) == report.default_law


def test_an_import_removes_the_stage_a_killed_import_left(db_url, tmp_path):
    """The stage of a process that no longer runs goes with the next import; a live one is left alone."""
    from engine.store.models import utcnow

    ingest_files("keep", [runs_csv(tmp_path / "keep.csv", "k", 3)], url=db_url)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = __import__("socket").gethostname()
    with get_engine(db_url).begin() as c:
        for pid in (gone.pid, os.getpid()):
            stage = c.execute(IngestStage.__table__.insert().returning(IngestStage.id),
                              {"project": "keep", "pid": pid, "host": host, "heartbeat_at": utcnow(),
                               "created_at": utcnow()}).scalar_one()
            run = c.execute(StagedRun.__table__.insert().returning(StagedRun.id),
                            {"stage_id": stage, "name": f"orphan{pid}", "mixture": {"web": 1.0}, "provenance": {},
                             "method": "static", "content_hash": ""}).scalar_one()
            c.execute(StagedMeasurement.__table__.insert(), {"stage_id": stage, "staged_run_id": run,
                                                             "target": "web", "tokens_seen": None, "value": 1.0})
    ingest_files("keep", [runs_csv(tmp_path / "more.csv", "m", 4)], url=db_url)
    with get_engine(db_url).connect() as c:
        assert c.execute(select(IngestStage.pid)).scalars().all() == [os.getpid()]
        assert c.execute(select(StagedRun.name)).scalars().all() == [f"orphan{os.getpid()}"]
    assert count(db_url, Run) == 7 and count(db_url, StagedMeasurement) == 1
