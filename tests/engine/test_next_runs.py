"""The loop: suggestions stored as pending runs, results matched back by id or mixture, rounds, defaults."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.plan.synthetic import truth
from engine.services import next_runs
from engine.services.defaults import defaults_from, round_budget
from engine.services.fits import fit_project
from engine.services.ingest import ingest_files

DOMAINS = ["web", "code", "books"]


def runs_csv(path, mixtures, names, seed=0):
    rng = np.random.default_rng(seed)
    law = truth(np.array([0.2, 0.15, 0.1]), DOMAINS)
    lines = ["run_id,tokens," + ",".join(f"mix:{d}" for d in DOMAINS) + ",loss:web"]
    for name, p in zip(names, mixtures):
        y = law.predict(np.asarray(p)[None])[0] + rng.normal(0, 0.01)
        lines.append(f"{name},1000000," + ",".join(f"{v:.6f}" for v in p) + f",{y:.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def project(tmp_path, sqlite_url):
    mixtures = np.random.default_rng(0).dirichlet(np.ones(3), 30)
    ingest_files("loop", [runs_csv(tmp_path / "runs.csv", mixtures, [f"r{i}" for i in range(30)])], url=sqlite_url)
    fit_project("loop", laws=["exponential"], folds=3, bootstrap=8, url=sqlite_url)
    return sqlite_url


def test_suggestions_become_pending_runs_that_results_complete(project, tmp_path):
    url = project
    events = []
    pending = next_runs.suggest_pending("loop", 25e6, 3, url=url, progress=events.append)
    assert [p.name for p in pending] == ["next-r1-01", "next-r1-02", "next-r1-03"]
    assert all(p.state == "pending" and p.round == 1 and p.budget_tokens == 1e6 for p in pending)
    assert all(abs(sum(p.mixture.values()) - 1) < 1e-4 and "bootstrap refits disagree" in p.reason for p in pending)
    assert events[-1].fraction == 1.0
    # One result carries the pending id; another comes back renamed but with the same mixture.
    first, second = pending[0], pending[1]
    runs_csv(tmp_path / "back.csv", [list(first.mixture.values()), list(second.mixture.values())],
             [first.name, "cluster-job-77"], seed=1)
    ingest_files("loop", [tmp_path / "back.csv"], url=url)
    assert sorted(next_runs.match_results("loop", url=url)) == [first.name, second.name]
    by_name = {p.name: p for p in next_runs.list_pending("loop", url=url)}
    assert by_name[first.name].run == first.name and by_name[second.name].run == "cluster-job-77"
    assert by_name[pending[2].name].state == "pending"
    assert next_runs.match_results("loop", url=url) == []  # nothing new: nothing matched twice
    # A second round, after the results: the chart has two rounds, each with its plan's figures.
    next_runs.suggest_pending("loop", 25e6, 2, url=url)
    rounds = next_runs.rounds("loop", url=url)
    assert [r.label for r in rounds] == ["round 1", "round 2"]
    assert rounds[0].done == 2 and rounds[0].runs == 3
    assert all(r.predicted is not None and r.interval_width is not None and r.interval_width >= 0 for r in rounds)


def test_pending_downloads_parse(project):
    pending = next_runs.suggest_pending("loop", 25e6, 2, url=project)
    rows = list(csv.DictReader(io.StringIO(next_runs.pending_csv(pending))))
    assert [r["run_id"] for r in rows] == [p.name for p in pending] and rows[0]["tokens"] == "1000000"
    specs = yaml.safe_load(next_runs.pending_trainer_config(pending, project="loop"))["runs"]
    assert specs[0]["mixture"] == pending[0].mixture and specs[0]["name"] == pending[0].name
    script = next_runs.pending_commands(pending, project="loop")
    assert script.count("mixplan train ") == 2 and f"--name {pending[1].name}" in script


def test_cli_suggest_stores_and_runs_pending_lists(project):
    result = CliRunner().invoke(app, ["suggest", "-p", "loop", "--budget", "25M", "--n", "2", "--json"],
                                env={"MIXPLAN_DATABASE_URL": project})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["round"] == 1 and [p["run_id"] for p in doc["pending"]] == ["next-r1-01", "next-r1-02"]
    result = CliRunner().invoke(app, ["runs", "-p", "loop", "--pending", "--json"], env={"MIXPLAN_DATABASE_URL": project})
    assert result.exit_code == 0, result.output
    assert [p["name"] for p in json.loads(result.stdout)["pending"]] == ["next-r1-01", "next-r1-02"]


def test_train_specs_refuse_domains_the_data_lacks(project, tmp_path):
    from engine.errors import InputError
    from engine.services.training import prepare

    for i in range(3):
        (tmp_path / f"web{i}.txt").write_text(f"hello world {i} " * 400)
    prepare(tmp_path / "prep", {"web": [str(tmp_path / f"web{i}.txt") for i in range(3)]})
    pending = next_runs.suggest_pending("loop", 25e6, 1, url=project)
    with pytest.raises(InputError, match="lacks: .*code"):
        next_runs.train_specs("loop", [pending[0].name], data_dir=str(tmp_path / "prep"), url=project)


def test_defaults_feed_the_budget_from_unique_tokens_or_the_proxy_scale():
    known = defaults_from(np.array([3.8e6, 31e3, 0.37e6]), np.array([1e6, 1e6, 6e4]), ["a", "b"], 3)
    assert known.feedable_tokens == pytest.approx(4 * 4.201e6)
    assert known.budget_tokens <= 0.5 * known.feedable_tokens and known.budget_tokens == 8.4e6
    assert known.sweep_high == known.feedable_tokens and known.sweep_low == 1e6 and known.objective == "mean"
    unknown = defaults_from(np.array([np.nan, 1e9]), np.array([1e9] * 4), ["loss"], 4)
    assert unknown.budget_tokens == 25e9 and "25 x the proxy" in unknown.budget_reason
    assert unknown.objective == "loss" and unknown.sweep_low == 1e9 and unknown.sweep_high == 1e12
    assert round_budget(16.8e6 * 0.5) == 8.4e6 and round_budget(8.49e6) == 8.4e6


def test_the_plan_behind_a_suggestion_follows_the_seed(project):
    """The plan's own search takes the suggestion's seed: the same seed repeats the plan, another changes it."""
    from sqlalchemy import select

    from engine.store import Plan, session_scope

    for seed in (0, 0, 7):
        next_runs.suggest_pending("loop", 25e6, 1, seed=seed, url=project)
    with session_scope(project) as s:
        first, again, other = [p.mixture for p in s.scalars(select(Plan).order_by(Plan.id))]
    assert first == again
    assert first != other
