"""`mixplan fit / predict / laws / use-law` through Typer's CliRunner."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from engine.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from test_laws_fits import synthetic_project  # noqa: E402


def test_fit_predict_laws_and_override(tmp_path, sqlite_url):
    synthetic_project(tmp_path, sqlite_url)
    runner = CliRunner()
    db = ["--db", sqlite_url]
    fitted = runner.invoke(app, ["fit", "-p", "laws", "-t", "web", "--laws", "linear,exponential", "--bootstrap", "5", "--json", *db])
    assert fitted.exit_code == 0, fitted.output
    doc = json.loads(fitted.stdout)
    assert [r["law"] for r in doc["rows"]] == ["linear", "exponential"] and doc["default_law"] == "exponential"

    table = runner.invoke(app, ["fit", "-p", "laws", "-t", "web", "--laws", "linear,exponential", "--bootstrap", "5", *db])
    assert "reused" in table.stdout and "*exponential" in table.stdout

    (tmp_path / "cand.csv").write_text("run,mix:web,mix:code,mix:books\nc1,0.2,0.3,0.5\n")
    predicted = runner.invoke(app, ["predict", "-p", "laws", "-t", "web", "-m", str(tmp_path / "cand.csv"), "--json", *db])
    assert predicted.exit_code == 0, predicted.output
    candidate = json.loads(predicted.stdout)["candidates"][0]
    assert candidate["name"] == "c1" and candidate["lower"] <= candidate["predicted"] <= candidate["upper"]

    assert runner.invoke(app, ["use-law", "-p", "laws", "-t", "web", "linear", *db]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["laws", "-p", "laws", "-t", "web", "--json", *db]).stdout)
    assert listed["default_law"] == "linear"

    bad = runner.invoke(app, ["fit", "-p", "laws", "--laws", "magic", *db])
    assert bad.exit_code == 2 and "unknown law 'magic'" in bad.stderr
