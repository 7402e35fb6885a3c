"""Planning through the store: services and the `mixplan plan / sweep-budgets / suggest` commands."""

from __future__ import annotations

import csv
import os
import io
import json

import numpy as np
import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from engine.cli import app
from engine.plan.constraints import Constraints
from engine.plan.synthetic import truth
from engine.services.ingest import ingest_files, set_domain_metadata
from engine.services.plans import list_plans, make_project_plan
from engine.store import Plan as PlanRow
from engine.store import session_scope

DOMAINS = ["web", "code", "books", "math"]
UTILITY = np.array([0.2, 0.15, 0.1, 0.1])


def write_runs(folder, n=40, seed=0):
    """A tidy CSV of proxy runs whose loss follows a known law, with one target per domain and a mean."""
    rng = np.random.default_rng(seed)
    mixtures = rng.dirichlet(np.ones(len(DOMAINS)), n)
    law = truth(UTILITY, DOMAINS)
    lines = ["run_id,tokens," + ",".join(f"mix:{d}" for d in DOMAINS) + ",loss:web,loss:code"]
    for i, p in enumerate(mixtures):
        base = law.predict(p[None])[0]
        lines.append(f"r{i},1000000000," + ",".join(f"{v:.6f}" for v in p)
                     + f",{base + rng.normal(0, 0.01):.6f},{base - 0.3 * p[1] + rng.normal(0, 0.01):.6f}")
    path = folder / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


FIT = dict(laws=["exponential", "lightgbm"], folds=3, bootstrap=12)


def build_project(url: str, folder) -> str:
    ingest_files("planning", [write_runs(folder)], url=url)
    for domain, unique, tags, path in [("web", "1T", {"license": "cc-by"}, "/data/web"),
                                       ("code", "50B", {"license": "noncommercial"}, None),
                                       ("books", "2B", {}, None), ("math", "0.5B", {}, "/data/math.jsonl")]:
        set_domain_metadata("planning", domain, unique_tokens=unique, tags=tags, data_path=path, url=url)
    from engine.services.fits import fit_project
    fit_project("planning", url=url, **FIT)
    return "planning"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stored_project(request, tmp_path_factory):
    """One fitted project per backend for the whole module (fitting is the slow part)."""
    folder = tmp_path_factory.mktemp("plan-service")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'mixplan.sqlite'}"
    else:
        url = request.getfixturevalue("pg_server").create_database(f"plansvc{os.getpid()}")
    return build_project(url, folder), url


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan-cli")
    url = f"sqlite:///{folder / 'mixplan.sqlite'}"
    return build_project(url, folder), url


@pytest.fixture()
def project(cli_project, monkeypatch):
    """The CLI reads the database from the environment, as a user's shell would set it."""
    monkeypatch.setenv("MIXPLAN_DATABASE_URL", cli_project[1])
    return cli_project[0]


def test_plan_is_stored_with_its_fit_and_lists_back(stored_project):
    project, db_url = stored_project
    plan = make_project_plan(project, 25e9, Constraints(max_epochs=4), url=db_url)
    assert plan.plan_id is not None
    assert abs(sum(plan.recommended.mixture.values()) - 1) <= 1e-9
    assert plan.recommended.epochs["math"] <= 4 + 1e-9
    assert plan.domain_paths["web"] == "/data/web"
    stored = list_plans(project, url=db_url)[0]
    assert stored.recommended.mixture == plan.recommended.mixture and stored.plan_id == plan.plan_id
    assert plan.law_fit_ids and plan.law in {"exponential", "lightgbm"}
    with session_scope(db_url) as s:
        row = s.scalar(select(PlanRow).where(PlanRow.id == plan.plan_id))
        assert row.budget_tokens == 25e9 and row.constraints["max_epochs"] == 4
        assert row.law_fit_ids == plan.law_fit_ids


def test_cli_plan_json_is_one_document(project):
    result = CliRunner().invoke(app, ["plan", "--project", project, "--budget", "25B", "--format", "json",
                                      "--exclude-tag", "license=noncommercial", "--min", "books=0.1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    mixture = doc["recommended"]["mixture"]
    assert mixture["code"] == 0.0 and mixture["books"] >= 0.1 - 1e-9
    assert abs(sum(mixture.values()) - 1) <= 1e-9
    assert {b["name"] for b in doc["baselines"]} >= {"uniform", "natural", "unimax", "best observed run"}
    assert doc["recommended"]["objective_interval"][0] <= doc["recommended"]["objective"]


@pytest.mark.parametrize("fmt", ["yaml", "megatron", "hf", "mosaic", "csv", "table"])
def test_cli_plan_formats(project, fmt, tmp_path):
    out = tmp_path / f"plan.{fmt}"
    result = CliRunner().invoke(app, ["plan", "-p", project, "--budget", "3e11", "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    if fmt == "yaml":
        assert abs(sum(yaml.safe_load(text)["recommended"]["mixture"].values()) - 1) <= 1e-9
    elif fmt == "megatron":
        assert text.startswith("--data-path ") and "/data/web" in text
    elif fmt == "table":
        assert "best observed run" in text and "trust region" in text


@pytest.mark.parametrize("args, message", [
    (["--budget", "lots"], "--budget 'lots' is not a budget"),
    (["--budget", "25B", "--min", "code"], "--min 'code' is not NAME=SHARE"),
    (["--budget", "25B", "--max", "web=2"], "a share must be between 0 and 1"),
    (["--budget", "25B", "--fix", "wiki=0.1"], "--fix names domain 'wiki'"),
    (["--budget", "25B", "--format", "xml"], "--format 'xml' is unknown"),
    (["--budget", "25B", "--params", "big"], "--params 'big' is not a model size"),
    (["--budget", "1T", "--max-epochs", "1", "--exclude", "web"], "allow at most"),
    (["--budget", "25B", "--objective", "nope"], "nope"),
])
def test_cli_plan_rejects_bad_arguments_in_one_line(project, args, message):
    result = CliRunner().invoke(app, ["plan", "--project", project, *args])
    assert result.exit_code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_sweep_and_suggest(project, tmp_path):
    result = CliRunner().invoke(app, ["sweep-budgets", "-p", project, "--points", "4", "--json"])
    assert result.exit_code == 0, result.output
    sweep = json.loads(result.stdout)
    assert len(sweep["budgets"]) == 4 and sweep["cap_budget"]["math"] is not None
    out = tmp_path / "next.csv"
    result = CliRunner().invoke(app, ["suggest", "-p", project, "--budget", "300B", "--n", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 5 and set(rows[0]) == {"run_id", "tokens", *DOMAINS}
    result = CliRunner().invoke(app, ["suggest", "-p", project, "--budget", "300B", "--n", "0"])
    assert result.exit_code != 0 and "--n 0" in result.stderr
