"""--json, --db and MIXPLAN_SEED on every command the README says takes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_laws_fits import synthetic_project  # noqa: E402
from test_plan_service import build_project  # noqa: E402

from engine.cli import app

runner = CliRunner()
MIXPLAN = Path(sys.executable).parent / "mixplan"
NO_RESULT = {"dashboard"}  # replaces itself with the Streamlit server: nothing to print as JSON


def commands() -> dict:
    """Every command by its full name ("domains set"); typer's own click classes, so groups are duck-typed."""
    found: dict = {}

    def walk(command, path: str) -> None:
        if hasattr(command, "commands"):
            if command.callback is not None and path:  # `domains` lists on its own
                found[path] = command
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            found[path] = command

    walk(typer.main.get_command(app), "")
    return found


def options(command) -> set[str]:
    return {opt for p in command.params for opt in getattr(p, "opts", [])}


def test_every_command_takes_db_and_every_result_json():
    found = commands()
    assert {"plan", "suggest", "sweep-budgets", "fit", "predict", "ingest", "db upgrade", "domains set"} <= set(found)
    missing_db = sorted(name for name, c in found.items() if "--db" not in options(c))
    missing_json = sorted(name for name, c in found.items() if name not in NO_RESULT and "--json" not in options(c))
    assert missing_db == [] and missing_json == []


def test_every_seed_option_defaults_to_mixplan_seed():
    seeded = {name: c for name, c in commands().items() if "--seed" in options(c)}
    assert {"fit", "plan", "suggest", "train", "sweep", "prepare-data"} <= set(seeded)
    for name, command in seeded.items():
        param = next(p for p in command.params if "--seed" in p.opts)
        assert param.default is None, name  # None: the command reads MIXPLAN_SEED


def test_mixplan_seed_is_the_fit_seed_unless_seed_is_given(tmp_path, sqlite_url, monkeypatch):
    synthetic_project(tmp_path, sqlite_url)
    db = ["--db", sqlite_url]
    monkeypatch.setenv("MIXPLAN_SEED", "7")
    result = runner.invoke(app, ["fit", "-p", "laws", "-t", "web", "--laws", "linear", "--bootstrap", "3", "--json", *db])
    assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(app, ["laws", "-p", "laws", "-t", "web", "--json", *db]).stdout)
    assert [f["options"]["seed"] for f in listed["fits"]] == [7]
    runner.invoke(app, ["fit", "-p", "laws", "-t", "web", "--laws", "linear", "--bootstrap", "3", "--seed", "2", *db])
    listed = json.loads(runner.invoke(app, ["laws", "-p", "laws", "-t", "web", "--json", *db]).stdout)
    assert [f["options"]["seed"] for f in listed["fits"]] == [2]
    monkeypatch.setenv("MIXPLAN_SEED", "seven")
    bad = runner.invoke(app, ["fit", "-p", "laws", "-t", "web", "--laws", "linear", *db])
    assert bad.exit_code == 2 and "MIXPLAN_SEED 'seven' is not a whole number" in bad.stderr


def test_db_option_wins_over_the_environment(tmp_path, monkeypatch):
    mine, other = f"sqlite:///{tmp_path / 'mine.sqlite'}", f"sqlite:///{tmp_path / 'other.sqlite'}"
    monkeypatch.setenv("MIXPLAN_DATABASE_URL", other)
    created = runner.invoke(app, ["create-project", "alpha", "--json", "--db", mine])
    assert created.exit_code == 0 and json.loads(created.stdout) == {"project": "alpha", "description": "",
                                                                      "created": True}
    assert [p["name"] for p in json.loads(runner.invoke(app, ["projects", "--json", "--db", mine]).stdout)] == ["alpha"]
    assert json.loads(runner.invoke(app, ["projects", "--json"]).stdout) == []
    for args in (["plan", "-p", "nope", "--budget", "1B"], ["sweep-budgets", "-p", "nope"],
                 ["suggest", "-p", "nope", "--budget", "1B"], ["predict", "-p", "nope", "-m", "x.csv"],
                 ["use-law", "-p", "nope", "gp"], ["export-runs", "--project", "nope", "--out", str(tmp_path)]):
        result = runner.invoke(app, [*args, "--db", mine])
        assert result.exit_code == 2 and "no project named 'nope'; known: alpha." in result.stderr, (args, result.stderr)
    current = json.loads(runner.invoke(app, ["db", "current", "--json", "--db", mine]).stdout)
    assert current["revision"] and "mine.sqlite" in current["database"]
    deleted = runner.invoke(app, ["delete-project", "alpha", "--yes", "--json", "--db", mine])
    assert json.loads(deleted.stdout) == {"project": "alpha", "deleted": True}


def test_plan_json_through_the_console_script(tmp_path):
    url = f"sqlite:///{tmp_path / 'mixplan.sqlite'}"
    project = build_project(url, tmp_path)
    env = {**os.environ, "MIXPLAN_HOME": str(tmp_path / "home")}
    env.pop("MIXPLAN_DATABASE_URL", None)
    done = subprocess.run([str(MIXPLAN), "plan", "-p", project, "--budget", "1e+10", "--json", "--db", url],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["budget_tokens"] == 1e10 and sum(plan["recommended"]["mixture"].values()) == pytest.approx(1.0)
    both = subprocess.run([str(MIXPLAN), "plan", "-p", project, "--budget", "1e10", "--json", "--format", "yaml",
                           "--db", url], capture_output=True, text=True, env=env, timeout=600)
    assert both.returncode == 2 and "--json and --format yaml" in both.stderr
    domains_set = subprocess.run([str(MIXPLAN), "domains", "set", "web", "-p", project, "--tag", "tier=1", "--json",
                                  "--db", url], capture_output=True, text=True, env=env, timeout=600)
    assert domains_set.returncode == 0, domains_set.stderr
    assert json.loads(domains_set.stdout)["domain"]["tags"] == {"license": "cc-by", "tier": 1}
