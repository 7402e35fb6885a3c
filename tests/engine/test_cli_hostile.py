"""Every CLI command against hostile arguments: bad database URLs, a corrupt or read-only database,
numbers that overflow, missing files. None may print a traceback; each ends with a one-line message
and exit code 2 (expected error), 1 (a bug, traceback logged to a file) or 0.

The commands run in-process through ``engine.cli.main`` - the console script's own entry point and its
top-level handler - so a hundred and more cases take seconds, not an interpreter start each.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.services.fits import fit_project
from engine.services.ingest import ingest_files
from engine.store import dispose_engines

DOMAINS = ("web", "code", "books")


def _runs_csv(path: Path, n: int = 16) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["run_id,mix:web,mix:code,mix:books,loss:web,loss:code"]
    for i in range(n):
        p = rng.dirichlet(np.ones(3))
        lines.append(f"r{i},{p[0]:.6f},{p[1]:.6f},{1 - p[0] - p[1]:.6f},{3 - p[0]:.4f},{2.5 - p[1]:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A good database with one fitted project, plus the hostile files and URLs."""
    root = tmp_path_factory.mktemp("hostile")
    good = root / "good.sqlite"
    url = f"sqlite:///{good}"
    ingest_files("p", [_runs_csv(root / "runs.csv")], url=url)
    fit_project("p", laws=["linear"], bootstrap=5, url=url)
    (root / "corrupt.sqlite").write_bytes(b"this is not a database\x00" * 100)
    shutil.copy(good, root / "readonly.sqlite")
    (root / "huge.csv").write_text("run_id,mix:web,mix:code,loss:web\nr1,1e308,1e308,3.0\n")
    (root / "mix_huge.csv").write_text("web,code,books\n1e308,1e308,0\n")
    (root / "empty_dir").mkdir()
    dispose_engines()
    return {"root": root, "url": url}


BAD_DATABASES = {
    "not-a-url": "notaurl",
    "missing-folder": "sqlite:////nonexistent/dir/x.sqlite",
    "refused-server": "postgresql+psycopg://nobody@127.0.0.1:1/x?connect_timeout=2",
    "unknown-backend": "mysql://user@localhost/db",
    "corrupt-file": "sqlite:///{root}/corrupt.sqlite",
    "read-only": "sqlite:///file:{root}/readonly.sqlite?mode=ro&uri=true",
}

# One ordinary invocation of every command that touches the database.
EVERY_COMMAND = [
    ["ingest", "{root}/runs.csv", "-p", "p2"],
    ["projects"],
    ["runs", "-p", "p"],
    ["create-project", "x"],
    ["delete-project", "x", "--yes"],
    ["demo"],
    ["fit", "-p", "p", "--laws", "linear", "--bootstrap", "5"],
    ["predict", "-p", "p", "-m", "{root}/mix_huge.csv"],
    ["laws", "-p", "p"],
    ["use-law", "linear", "-p", "p"],
    ["plan", "-p", "p", "--budget", "1B"],
    ["sweep-budgets", "-p", "p", "--points", "3"],
    ["suggest", "-p", "p", "--budget", "1B", "--n", "2"],
    ["jobs"],
    ["export-runs", "--project", "p", "--out", "{root}/export"],
    ["domains", "-p", "p"],
    ["domains", "set", "web", "-p", "p", "--unique-tokens", "1B"],
    ["db", "current"],
    ["db", "upgrade"],
    ["db", "clean"],
    ["train", "--project", "p", "--data", "{root}/empty_dir", "--tokens", "1k", "--mixture", "web=1"],
    ["sweep", "--project", "p", "--data", "{root}/empty_dir", "--n", "1", "--budgets", "1k"],
    ["prepare-data", "web={root}/nope", "--out", "{root}/prep", "--project", "p"],
]

HOSTILE_VALUES = [
    ["plan", "-p", "p", "--budget", "1e308"],
    ["plan", "-p", "p", "--budget", "-5"],
    ["plan", "-p", "p", "--budget", "abc"],
    ["plan", "-p", "p", "--budget", "1e-300"],
    ["plan", "-p", "p", "--budget", "1B", "--min", "web=1e308"],
    ["plan", "-p", "p", "--budget", "1B", "--max", "web=-1"],
    ["plan", "-p", "p", "--budget", "1B", "--fix", "web=nan"],
    ["plan", "-p", "p", "--budget", "1B", "--max-epochs", "1e308"],
    ["plan", "-p", "p", "--budget", "1B", "--params", "1e308"],
    ["plan", "-p", "nope", "--budget", "1B"],
    ["sweep-budgets", "-p", "p", "--low", "1e308", "--high", "1e309"],
    ["sweep-budgets", "-p", "p", "--points", "-3"],
    ["suggest", "-p", "p", "--budget", "1B", "--n", "1000000000000"],
    ["fit", "-p", "p", "--folds", "1000000"],
    ["fit", "-p", "p", "--laws", "nope"],
    ["fit", "-p", "p", "--objective", "web=1e308"],
    ["runs", "-p", "p", "--limit", "-1"],
    ["predict", "-p", "p", "-m", "{root}/nonexistent.csv"],
    ["predict", "-p", "p", "-m", "{root}/empty_dir"],
    ["ingest", "{root}/nonexistent.csv", "-p", "p"],
    ["ingest", "{root}/huge.csv", "-p", "p"],
    ["ingest", "{root}/empty_dir", "-p", "p"],
    ["ingest", "{root}/runs.csv", "-p", "   "],
    ["domains", "set", "web", "-p", "p", "--unique-tokens", "1e308"],
    ["domains", "set", "web", "-p", "p", "--tag", "=x"],
    ["train", "--project", "p", "--data", "{root}/empty_dir", "--tokens", "1e308", "--mixture", "web=1"],
    ["train", "--project", "p", "--data", "{root}/nonexistent", "--tokens", "1k", "--mixture", "web=1e308"],
    ["export-runs", "--project", "nope", "--out", "{root}/export2"],
    ["create-project", ""],
    ["use-law", "nope", "-p", "p"],
]


def _has_db_option(argv: list[str]) -> bool:
    import typer.main

    from engine.cli import app

    command = typer.main.get_command(app)
    for word in argv:
        if not hasattr(command, "commands") or word not in command.commands:
            break
        command = command.commands[word]
    return any("--db" in getattr(p, "opts", []) for p in command.params)


def run_cli(argv: list[str], capsys, caplog) -> tuple[int, str]:
    caplog.clear()
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    code = done.value.code if isinstance(done.value.code, int) else (0 if done.value.code is None else 2)
    logged = [r for r in caplog.records if r.exc_info]
    assert not logged, f"{argv}: a traceback was logged: {logged[0].getMessage()}"
    return code, err


def assert_no_traceback(argv, code, err):
    assert "Traceback" not in err and 'File "' not in err, f"{argv}: traceback on stderr:\n{err}"
    assert "[SQL:" not in err and "[parameters:" not in err, f"{argv}: SQL on stderr:\n{err}"
    assert len(err) < 2000, f"{argv}: {len(err)} characters on stderr:\n{err[:500]}"
    assert code in (0, 1, 2), f"{argv}: exit code {code}"
    if code:
        assert err.strip(), f"{argv}: failed without a word"


@pytest.mark.parametrize("database", list(BAD_DATABASES))
def test_every_command_against_a_bad_database(world, database, capsys, caplog, monkeypatch):
    root = world["root"]
    url = BAD_DATABASES[database].format(root=root)
    monkeypatch.setenv("MIXPLAN_DATABASE_URL", url)
    outcomes = {}
    for template in EVERY_COMMAND:
        argv = [part.format(root=root) for part in template]
        if _has_db_option(argv):
            argv += ["--db", url]
        code, err = run_cli(argv, capsys, caplog)
        assert_no_traceback(argv, code, err)
        outcomes[" ".join(template[:2])] = code
        assert code != 1, f"{argv}: a database problem reported as a bug:\n{err}"
        if database not in ("read-only",) and template[0] not in ("prepare-data", "train", "sweep"):
            assert code == 2, f"{argv}: exit {code} with a {database} database:\n{err}"
        dispose_engines()
    assert not Path("/nonexistent").exists(), "a --db path created its folder"


def test_hostile_values(world, capsys, caplog, monkeypatch):
    root = world["root"]
    monkeypatch.setenv("MIXPLAN_DATABASE_URL", world["url"])
    monkeypatch.setenv("MIXPLAN_HOME", str(root / "home"))
    bugs = []
    for template in HOSTILE_VALUES:
        argv = [part.format(root=root) for part in template]
        if _has_db_option(argv):
            argv += ["--db", world["url"]]
        code, err = run_cli(argv, capsys, caplog)
        assert_no_traceback(argv, code, err)
        if code == 1:
            bugs.append(f"{' '.join(template)}: {err.strip()}")
    assert not bugs, "unexpected errors (bugs) on hostile values:\n" + "\n".join(bugs)


def test_a_bug_becomes_one_line_and_a_log_file(tmp_path, capsys, caplog, monkeypatch):
    """An exception mixplan did not expect: exit 1, one short message naming the log with the traceback."""
    from engine.services import projects

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(projects, "list_projects", broken)
    monkeypatch.setenv("MIXPLAN_HOME", str(tmp_path / "home"))
    code, err = run_cli(["projects", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"], capsys, caplog)
    assert code == 1 and "Traceback" not in err and "This is a bug in mixplan" in err, err
    logs = list((tmp_path / "home" / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "ZeroDivisionError: boom" in logs[0].read_text() and "Traceback" in logs[0].read_text()


def test_missing_database_folder_is_not_created(tmp_path, capsys, caplog):
    target = tmp_path / "no" / "such" / "dir" / "x.sqlite"
    code, err = run_cli(["projects", "--db", f"sqlite:///{target}"], capsys, caplog)
    assert code == 2 and "does not exist" in err and not target.parent.exists()
    assert not (tmp_path / "no").exists()


def test_console_script_prints_no_traceback(tmp_path, mixplan_command):
    """The same handler through the installed console script, once, end to end."""
    import os
    import subprocess

    env = {**os.environ, "MIXPLAN_HOME": str(tmp_path)}
    done = subprocess.run([*mixplan_command, "projects", "--db", "sqlite:////nonexistent/dir/x.sqlite"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "does not exist" in done.stderr, done.stderr
    assert sys.executable  # the script sits beside this interpreter (see conftest.mixplan_command)


def test_sql_parameters_are_never_in_a_message(tmp_path):
    from engine.store import get_engine

    engine = get_engine(f"sqlite:///{tmp_path / 'p.sqlite'}")
    assert engine.hide_parameters


def test_a_writer_that_never_gets_the_lock_says_the_database_is_busy(tmp_path, monkeypatch):
    """Another process holds SQLite's write lock throughout: bounded retries, then one clear message."""
    import sqlite3

    from engine.errors import BusyError
    from engine.store import session
    from engine.store.session import get_engine

    path = tmp_path / "locked.sqlite"
    url = f"sqlite:///{path}"
    monkeypatch.setattr(session, "BUSY_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(session, "WRITE_ATTEMPTS", 2)
    get_engine(url)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the other writer, mid-transaction
    try:
        with pytest.raises(BusyError, match="the database is busy") as info:
            ingest_files("p", [_runs_csv(tmp_path / "runs.csv", 4)], url=url)
        assert "INSERT" not in str(info.value) and "[parameters" not in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ingest_files("p", [tmp_path / "runs.csv"], url=url).runs_added == 4


def test_db_upgrade_creates_the_default_database_folder_like_every_other_command(tmp_path, mixplan_command):
    """The default file under MIXPLAN_HOME is the one database whose folder mixplan makes (a container's first
    start runs `mixplan db upgrade` on an empty home); a --db path in a missing folder stays refused."""
    import os
    import subprocess

    home = tmp_path / "new-home"
    env = {k: v for k, v in os.environ.items() if k != "MIXPLAN_DATABASE_URL"} | {"MIXPLAN_HOME": str(home)}
    done = subprocess.run([*mixplan_command, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (home / "mixplan.sqlite").exists()
    refused = subprocess.run([*mixplan_command, "db", "upgrade", "--db", f"sqlite:///{tmp_path}/missing/x.sqlite"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "does not exist" in refused.stderr
    assert not (tmp_path / "missing").exists()
