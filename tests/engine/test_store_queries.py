"""store/queries.py (project lookup, final values), the one data hash, and one dataset load per plan."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import event
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from ingest_helpers import write  # noqa: E402
from test_plan_service import build_project  # noqa: E402

from engine.cli import app
from engine.errors import InputError
from engine.services.ingest import ingest_files, set_domain_metadata
from engine.services.plans import make_project_plan
from engine.services.projects import create_project, project_data_hash
from engine.store import get_engine, queries, session_scope

CURVES = """run_id,tokens,mix:web,mix:code,loss:web
a,100,0.5,0.5,3.0
a,300,0.5,0.5,2.0
a,200,0.5,0.5,2.5
b,100,0.2,0.8,3.5
"""


def test_find_project_names_the_known_ones(db_url):
    with session_scope(db_url) as s:
        with pytest.raises(InputError, match="no project named 'x'; there are no projects yet"):
            queries.find_project(s, "x")
    for name in ("beta", "alpha"):
        create_project(name, url=db_url)
    with session_scope(db_url) as s:
        assert queries.find_project(s, "alpha").name == "alpha"
        assert queries.project_id(s, "beta") == queries.find_project(s, "beta").id
        with pytest.raises(InputError, match=r"no project named 'gamma'; known: alpha, beta\."):
            queries.project_id(s, "gamma")
        assert queries.project_or_none(s, "gamma") is None


def test_every_command_reports_an_unknown_project_the_same_way(sqlite_url):
    create_project("alpha", url=sqlite_url)
    runner = CliRunner()
    for args in (["runs", "-p", "nope"], ["domains", "-p", "nope"], ["fit", "-p", "nope"], ["laws", "-p", "nope"],
                 ["plan", "-p", "nope", "--budget", "1B"], ["delete-project", "nope", "--yes"],
                 ["ingest", "-p", "nope", "--no-create", "x.csv"]):
        result = runner.invoke(app, [*args, "--db", sqlite_url])
        assert result.exit_code == 2, (args, result.output)
        if args[0] != "ingest":  # ingest checks the file first
            assert "no project named 'nope'; known: alpha." in result.stderr, (args, result.stderr)


def test_final_values_put_the_end_of_run_value_after_every_checkpoint(db_url, tmp_path):
    ingest_files("p", [write(tmp_path / "c.csv", CURVES)], url=db_url)
    end = write(tmp_path / "end.jsonl", '{"run_id": "b", "mixture": {"web": 0.2, "code": 0.8}, '
                                        '"measurements": [{"target": "web", "value": 1.5}]}\n')
    ingest_files("p", [end], url=db_url)
    with session_scope(db_url) as s:
        pid = queries.project_id(s, "p")
        final = queries.final_values(s, pid)
        counts = queries.measurement_counts(s, pid)
    assert sorted(v for values in final.values() for v in values.values()) == [1.5, 2.0]
    assert sorted(counts.values()) == [2, 3]


def test_the_data_hash_changes_with_tags_and_paths(sqlite_url, tmp_path):
    ingest_files("p", [write(tmp_path / "c.csv", CURVES)], url=sqlite_url)
    first = project_data_hash("p", url=sqlite_url)
    assert project_data_hash("p", url=sqlite_url) == first
    set_domain_metadata("p", "web", tags={"license": "cc-by"}, url=sqlite_url)
    tagged = project_data_hash("p", url=sqlite_url)
    assert tagged != first
    set_domain_metadata("p", "web", data_path="/data/web", url=sqlite_url)
    assert project_data_hash("p", url=sqlite_url) not in (first, tagged)


def test_a_plan_loads_the_project_once(sqlite_url, tmp_path):
    project = build_project(sqlite_url, tmp_path)
    loads = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"\bFROM domain\b", statement):  # load_dataset reads the domain table once per load
            loads.append(statement)

    engine = get_engine(sqlite_url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        plan = make_project_plan(project, 1e10, url=sqlite_url)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(loads) == 1 and plan.law_fit_ids and plan.plan_id is not None
