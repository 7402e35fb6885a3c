"""The demo project and the synthetic logs it falls back to."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from engine.cli import app
from engine.cli.dashboard import streamlit_command
from engine.errors import InputError
from engine.services.demo import DEMO_PROJECT, ensure_demo_project, find_demo_source, load_demo_project
from engine.services.projects import create_project, delete_project, list_projects
from engine.store import Domain, IngestBatch, Measurement, session_scope

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC = REPO / "examples" / "synthetic"


def load_script():
    spec = importlib.util.spec_from_file_location("make_synthetic_demo", REPO / "scripts" / "make_synthetic_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def synthetic_only(tmp_path) -> Path:
    """An examples/ folder holding only the synthetic logs (the real demo may or may not exist)."""
    shutil.copytree(SYNTHETIC, tmp_path / "examples" / "synthetic")
    return tmp_path / "examples"


def test_committed_synthetic_logs_are_what_the_script_writes(tmp_path):
    script = load_script()
    runs = script.make_runs(seed=0)
    script.write_runs(runs, tmp_path / "runs.jsonl")
    script.write_domains(tmp_path / "domains.csv")
    for name in ("runs.jsonl", "domains.csv"):
        assert (tmp_path / name).read_bytes() == (SYNTHETIC / name).read_bytes(), f"regenerate {name}"


def test_synthetic_values_follow_the_stated_law():
    script = load_script()
    residuals = []
    for line in (SYNTHETIC / "runs.jsonl").read_text().splitlines():
        record = json.loads(line)
        mixture = np.array([record["mixture"][d] for d in script.DOMAINS])
        assert mixture.sum() == pytest.approx(1.0, abs=1e-9)
        for m in record["measurements"]:
            expected = script.true_loss(mixture, m["tokens"])[script.TARGETS.index(m["target"])]
            residuals.append(m["value"] - expected)
    residuals = np.array(residuals)
    assert len(residuals) == 40 * 4 * 3
    # Only the stated noise separates the values from the law.
    assert abs(residuals.mean()) < 3 * script.NOISE / np.sqrt(len(residuals))
    assert residuals.std() == pytest.approx(script.NOISE, rel=0.15)


def test_repetition_makes_the_small_domain_worth_less():
    script = load_script()
    wiki = script.DOMAINS.index("wiki")
    mixture = np.full(len(script.DOMAINS), 0.2)
    fresh = script.effective_tokens(mixture, 1e8)
    repeated = script.effective_tokens(mixture, 1e9)  # wiki is read 2.5 times at 1e9 tokens
    assert fresh[wiki] == pytest.approx(2e7)
    assert repeated[wiki] < 2e8
    assert repeated[wiki] > script.UNIQUE_TOKENS[wiki]


def test_load_synthetic_demo(db_url, synthetic_only):
    assert load_demo_project(url=db_url, examples_dir=synthetic_only) == DEMO_PROJECT
    (demo,) = list_projects(db_url)
    assert (demo.name, demo.runs, demo.domains, demo.targets, demo.is_demo) == ("demo", 40, 5, 3, True)
    assert demo.description.startswith("Synthetic runs, not real trainings")
    assert "scripts/make_synthetic_demo.py" in demo.description
    with session_scope(db_url) as s:
        unique = dict(s.execute(select(Domain.name, Domain.unique_tokens)).all())
        assert s.scalar(select(func.count()).select_from(Measurement)) == 40 * 4 * 3
    assert unique == {"web": 2_000_000_000, "code": 300_000_000, "books": 200_000_000,
                      "wiki": 80_000_000, "arxiv": 150_000_000}


def test_ensure_demo_project_loads_once_and_respects_a_deletion(sqlite_url, synthetic_only):
    assert ensure_demo_project(sqlite_url, examples_dir=synthetic_only) == DEMO_PROJECT
    with session_scope(sqlite_url) as s:
        batches = s.scalar(select(func.count()).select_from(IngestBatch))
    assert ensure_demo_project(sqlite_url, examples_dir=synthetic_only) == DEMO_PROJECT
    with session_scope(sqlite_url) as s:
        assert s.scalar(select(func.count()).select_from(IngestBatch)) == batches

    create_project("mine", url=sqlite_url)
    delete_project(DEMO_PROJECT, url=sqlite_url)
    assert ensure_demo_project(sqlite_url, examples_dir=synthetic_only) is None
    assert [p.name for p in list_projects(sqlite_url)] == ["mine"]

    delete_project("mine", url=sqlite_url)  # an empty database is a first start again
    assert ensure_demo_project(sqlite_url, examples_dir=synthetic_only) == DEMO_PROJECT


def test_default_demo_source_is_described(sqlite_url):
    """Whatever examples/ holds (real trainer logs or the synthetic set) loads and carries its ABOUT.md."""
    source = find_demo_source()
    assert source is not None
    assert ensure_demo_project(sqlite_url) == DEMO_PROJECT
    (demo,) = list_projects(sqlite_url)
    assert demo.runs > 0 and demo.description == source.description


def test_broken_demo_logs_leave_no_demo_project(sqlite_url, synthetic_only):
    runs = synthetic_only / "synthetic" / "runs.jsonl"
    lines = runs.read_text().splitlines()
    lines[6] = lines[6].replace('"mixture": {"web": ', '"mixture": {"web": -')
    runs.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 7"):
        load_demo_project(url=sqlite_url, examples_dir=synthetic_only)
    assert list_projects(sqlite_url) == []
    assert ensure_demo_project(sqlite_url, examples_dir=synthetic_only) is None  # logged, dashboard still opens


def test_missing_demo_logs_say_how_to_make_them(sqlite_url, tmp_path):
    with pytest.raises(InputError, match="make_synthetic_demo.py"):
        load_demo_project(url=sqlite_url, examples_dir=tmp_path)


def test_demo_command_reports_counts(sqlite_url, monkeypatch):
    monkeypatch.setenv("MIXPLAN_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["project"] == "demo" and document["runs"] == list_projects(sqlite_url)[0].runs > 0
    again = CliRunner().invoke(app, ["demo", "--reset", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["runs"] == document["runs"]


def test_dashboard_command_turns_usage_statistics_off():
    command = streamlit_command("127.0.0.1", 8765)
    flags = dict(zip(command[5::2], command[6::2]))
    assert command[2:4] == ["streamlit", "run"] and command[4].endswith("app/streamlit_app.py")
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.headless"] == "true"
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8765"
    assert flags["--server.fileWatcherType"] == "none"
