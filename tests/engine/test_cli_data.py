"""The data commands: ingest, projects, runs, domains, db - through Typer's CliRunner and one real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from ingest_helpers import table_counts, tidy_csv, write  # noqa: E402

from engine.cli import app

# Click >= 8.2 keeps stdout and stderr apart on the result (result.stdout / result.stderr).
runner = CliRunner()
MIXPLAN = str(Path(sys.executable).parent / "mixplan")  # this venv's console script, not whatever is on PATH


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ingest_runs_projects_domains_on_the_regmix_pair(sqlite_url, regmix_dir):
    db = ["--db", sqlite_url]
    result = invoke("ingest", "--project", "pile", str(regmix_dir / "train_mixture_1m.csv"),
                    str(regmix_dir / "train_pile_loss_1m.csv"), *db)
    assert result.exit_code == 0, result.output
    assert "512 runs added" in result.stdout and "17 domains" in result.stdout and "13 targets" in result.stdout

    listed = invoke("projects", "--json", *db)
    doc = json.loads(listed.stdout)
    assert [(p["name"], p["runs"], p["domains"], p["targets"]) for p in doc] == [("pile", 512, 17, 13)]

    table = invoke("runs", "--project", "pile", *db)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "top", "shares"] and "512 runs" in lines[-1]
    assert "pile_cc 0.79" in lines[2] and "train_mixture_1m.csv" in lines[2]

    runs_doc = json.loads(invoke("runs", "--project", "pile", "--json", *db).stdout)
    assert len(runs_doc["runs"]) == 512 and runs_doc["runs"][0]["final"]["arxiv"] > 0

    again = invoke("ingest", "-p", "pile", str(regmix_dir / "train_mixture_1m.csv"),
                   str(regmix_dir / "train_pile_loss_1m.csv"), "--json", *db)
    assert json.loads(again.stdout)["already_imported"] is True


def test_domains_set_and_list(sqlite_url, tmp_path):
    db = ["--db", sqlite_url]
    assert invoke("ingest", "-p", "p", str(tidy_csv(tmp_path)), *db).exit_code == 0
    result = invoke("domains", "set", "--project", "p", "web", "--unique-tokens", "1.2B", "--tag", "license=cc-by",
                    "--tag", "noncommercial", "--data-path", "/d/web", *db)
    assert result.exit_code == 0, result.output
    doc = json.loads(invoke("domains", "--project", "p", "--json", *db).stdout)
    web = next(d for d in doc["domains"] if d["name"] == "web")
    assert web == {"name": "web", "unique_tokens": 1_200_000_000, "tags": {"license": "cc-by", "noncommercial": True},
                   "data_path": "/d/web"}
    table = invoke("domains", "-p", "p", *db).stdout
    assert "1.2B" in table and "license=cc-by" in table

    bad = invoke("domains", "set", "-p", "p", "wbe", "--unique-tokens", "5", *db)
    assert bad.exit_code != 0 and "no domain 'wbe'" in bad.stderr and bad.stdout == ""


def test_explicit_column_flags(sqlite_url, tmp_path):
    path = write(tmp_path / "c.csv", "name,frac_a,frac_b,acc_a\nx,0.5,0.5,0.7\n")
    result = invoke("ingest", "-p", "c", str(path), "--run-id-col", "name", "--mixture-cols", "frac_a,frac_b",
                    "--metric-cols", "acc_a", "--higher-is-better", "acc_a", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    from engine.services.runs import list_targets

    assert [(t.name, t.direction) for t in list_targets("c", url=sqlite_url)] == [("acc_a", "higher")]


def test_bad_input_exits_non_zero_with_the_message_on_stderr(sqlite_url, tmp_path):
    invoke("ingest", "-p", "p", str(tidy_csv(tmp_path)), "--db", sqlite_url)
    before = table_counts(sqlite_url)
    bad = write(tmp_path / "bad.csv", "run_id,mix:web,loss:web\nr9,1,nan\n")
    result = invoke("ingest", "-p", "p", str(bad), "--db", sqlite_url)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == ("error: bad.csv, line 2, column 'loss:web': the value is 'nan', not a finite number. "
                                     "Fix: remove the measurement, or leave the cell empty where it was not measured.")
    assert table_counts(sqlite_url) == before


def test_unknown_project_for_runs(sqlite_url):
    result = invoke("runs", "-p", "nope", "--db", sqlite_url)
    assert result.exit_code == 2 and "no project named 'nope'" in result.stderr


def test_db_upgrade_and_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    assert invoke("db", "current", "--db", url).stdout.strip() == "none"
    result = invoke("db", "upgrade", "--db", url)
    assert result.exit_code == 0 and "schema at revision" in result.stdout
    assert invoke("db", "current", "--db", url).stdout.strip() not in ("", "none")


def test_console_script_uses_mixplan_database_url(tmp_path, regmix_dir):
    env = {**os.environ, "MIXPLAN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}", "MIXPLAN_HOME": str(tmp_path)}
    done = subprocess.run([MIXPLAN, "ingest", "--project", "pile", str(regmix_dir / "train_mixture_1m.csv"),
                           str(regmix_dir / "train_pile_loss_1m.csv")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "512 runs added" in done.stdout
    listed = subprocess.run([MIXPLAN, "projects", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(listed.stdout)[0]["runs"] == 512
    bad = subprocess.run([MIXPLAN, "ingest", "-p", "pile", str(write(tmp_path / "e.csv", ""))], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and "e.csv, line 1: the file is empty." in bad.stderr
    assert (tmp_path / "cli.sqlite").exists()


def test_jobs_of_an_unknown_project_is_an_error_naming_the_known_ones(sqlite_url, tmp_path):
    assert invoke("ingest", "--project", "real", str(tidy_csv(tmp_path)), "--db", sqlite_url).exit_code == 0
    result = runner.invoke(app, ["jobs", "--project", "nope", "--db", sqlite_url])
    assert result.exit_code == 2, result.output
    assert "no project named 'nope'" in result.stderr and "real" in result.stderr
    assert invoke("jobs", "--project", "real", "--db", sqlite_url).exit_code == 0
