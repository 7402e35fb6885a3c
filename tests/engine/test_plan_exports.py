"""Exports of a plan parse back and match it; CSV cells never start a formula."""

from __future__ import annotations

import csv
import io
import json
import shlex

import numpy as np
import pytest
import yaml

from engine.errors import InputError
from engine.plan.budget_law import BudgetAwareModel
from engine.plan.constraints import Constraints
from engine.plan.exports import FORMATS, export, safe_cell, write_csv
from engine.plan.optimize import OptimizerSettings
from engine.plan.plan import Plan, PlanContext, make_plan
from engine.plan.repetition import RepetitionLaw
from engine.plan.synthetic import fit_power_model, truth
from engine.plan.token_law import TokenLaw

DOMAINS = ["=web", "code", "arxiv", "books"]  # a hostile name, as a spreadsheet would see it
PATHS = ["/data/web_text_document", "s3://bucket/code", None, "/data/books.jsonl"]


@pytest.fixture(scope="module")
def plan() -> Plan:
    rng = np.random.default_rng(0)
    observed = rng.dirichlet(np.ones(4), 40)
    y = truth(np.array([0.2, 0.15, 0.1, 0.1]), DOMAINS).predict(observed) + rng.normal(0, 0.01, 40)
    unique = np.array([1e12, 1e11, 5e8, 1e10])
    model = BudgetAwareModel(fit_power_model(observed, y, DOMAINS), unique, RepetitionLaw(),
                             TokenLaw(np.array([400.0]), np.array([0.3]), "prior", 1e9))
    ctx = PlanContext(observed, y, [f"r{i}" for i in range(40)], unique, [{}] * 4, PATHS, "exports", "h")
    return make_plan(model, ctx, 1e10, Constraints(max_epochs=4), settings=OptimizerSettings(n_samples=2000))


def test_json_and_yaml_parse_back_to_the_plan(plan):
    for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        doc = load(export(plan, fmt))
        back = Plan.from_dict(doc)
        for d, share in plan.recommended.mixture.items():
            assert back.recommended.mixture[d] == pytest.approx(share, abs=1e-6)
        assert back.recommended.objective == pytest.approx(plan.recommended.objective, abs=1e-6)
        assert back.recommended.objective_interval == pytest.approx(plan.recommended.objective_interval, abs=1e-6)
        assert [o.name for o in back.baselines] == [o.name for o in plan.baselines]
        assert back.budget_tokens == plan.budget_tokens


def test_megatron_weights_and_paths(plan):
    words = shlex.split(export(plan, "megatron"))
    assert words[0] == "--data-path"
    pairs = dict(zip(words[2::2], map(float, words[1::2])))
    expected = {(p or f"/path/to/{d}"): s for d, p, s in zip(DOMAINS, PATHS, plan.recommended.mixture.values())
                if s > 0}
    assert pairs.keys() == expected.keys()
    for path, share in expected.items():
        assert pairs[path] == pytest.approx(share, abs=1e-6)


def test_hf_and_mosaic_snippets_carry_the_shares(plan):
    import ast

    hf = export(plan, "hf")
    ast.parse(hf)  # valid Python
    call = [n for n in ast.walk(ast.parse(hf)) if isinstance(n, ast.keyword) and n.arg == "probabilities"][0]
    probs = ast.literal_eval(call.value)
    assert sum(probs) == pytest.approx(1.0, abs=1e-6)
    assert sorted(probs) == pytest.approx(sorted(s for s in plan.recommended.mixture.values() if s > 0), abs=1e-6)
    assert "load_dataset('json', data_files='/data/books.jsonl'" in hf
    mosaic = export(plan, "mosaic")
    tree = ast.parse(mosaic)
    props = [ast.literal_eval(k.value) for n in ast.walk(tree) if isinstance(n, ast.Call)
             for k in n.keywords if k.arg == "proportion"]
    assert sum(props) == pytest.approx(1.0, abs=1e-6)
    assert "remote='s3://bucket/code'" in mosaic and "local='/data/books.jsonl'" in mosaic


def test_csv_cells_cannot_run_as_formulas(plan):
    text = export(plan, "csv")
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows:
        for cell in row:
            numeric = cell.lstrip("-").replace(".", "", 1).replace("e", "", 1).replace("-", "").isdigit()
            assert numeric or not cell.startswith(("=", "+", "-", "@")), cell
    assert "'=web" in rows[0]
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell("web") == "web" and safe_cell("-2+3") == "'-2+3"
    assert safe_cell("=1") == "'=1" and safe_cell("-inf") == "'-inf"


def test_csv_negative_numbers_stay_numbers():
    """A guard that quotes -0.25 makes a spreadsheet read the figure as text (issue 11)."""
    assert safe_cell(-0.25) == "-0.25" and safe_cell("-1.5") == "-1.5" and safe_cell(-3) == "-3"
    rows = list(csv.reader(io.StringIO(write_csv(["option", "objective"], [["plan", -0.125]]))))
    assert rows[1] == ["plan", "-0.125"] and float(rows[1][1]) == -0.125
    assert list(csv.reader(io.StringIO(write_csv(["a"], [["+cmd|' /C calc'!A0"]]))))[1] == ["'+cmd|' /C calc'!A0"]


def test_unknown_format_is_an_input_error(plan):
    assert set(FORMATS) >= {"json", "yaml", "megatron", "hf", "mosaic"}
    with pytest.raises(InputError, match="--format 'xml' is unknown"):
        export(plan, "xml")
