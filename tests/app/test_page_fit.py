"""AppTest of the Fit page: comparison table with every law, charts, and the law override."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from engine.laws.registry import DEFAULT_LAWS, mixture_law
from engine.services.fits import fit_project, load_objective_model
from engine.services.ingest import ingest_files

PAGE = Path(__file__).resolve().parents[2] / "app" / "pages" / "fit.py"
TIMEOUT_SECONDS = 240


def fit_page_project(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    lines = ["run_id,tokens,mix:web,mix:code,mix:books,loss:web,loss:code"]
    for i, p in enumerate(rng.dirichlet(np.ones(3), 30)):
        web = 2 + np.exp(p @ [-1.0, 0.5, 0.5]) + rng.normal(0, 0.01)
        code = 1.5 + np.exp(p @ [0.5, -1.0, 0.5]) + rng.normal(0, 0.01)
        lines.append(f"r{i},1000000000,{p[0]:.6f},{p[1]:.6f},{1 - p[0] - p[1]:.6f},{web:.5f},{code:.5f}")
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    ingest_files("page-fit", [tmp_path / "runs.csv"])
    fit_project("page-fit")  # the page uses the same defaults, so it shows these fits reused
    return "page-fit"


def test_fit_page_shows_every_law_and_sets_the_default(tmp_path):
    project = fit_page_project(tmp_path)
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_SECONDS)
    at.session_state["project"] = project
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Fit"
    table = at.dataframe[0].value
    assert sorted(table["law"]) == sorted(DEFAULT_LAWS)
    assert table["note"].str.startswith("reused").all()
    # a law too far behind to be chosen says where its interval comes from
    behind = (table["Spearman"] < table["Spearman"].max() - 0.02) & table["law"].map(lambda law: mixture_law(law).has_refits)
    assert (table["note"].str.contains("no refits") == behind).all()
    assert table["Spearman"].min() > 0.5
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert len(charts) == 2  # predicted vs actual, per-domain effect

    law_box = next(s for s in at.selectbox if s.label == "Law the planner uses")
    law_box.set_value("linear").run()
    next(b for b in at.button if b.label == "Use this law").click().run()
    assert not at.exception, at.exception
    assert load_objective_model(project, objective="mean").law == "linear"


def test_fit_page_without_project_asks_for_one():
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception
    assert "No project selected" in at.info[0].value


def test_fit_page_never_fits_on_open_and_fits_as_a_job_on_request(tmp_path):
    import time

    from engine.services.jobs import list_jobs

    rng = np.random.default_rng(1)
    lines = ["run_id,tokens,mix:web,mix:code,loss:web,loss:code,loss:books"]
    for i, p in enumerate(rng.dirichlet(np.ones(2), 20)):
        lines.append(f"r{i},1000000,{p[0]:.6f},{p[1]:.6f},{2 + p[1]:.5f},{2 + p[0]:.5f},{2.5 + 0.1 * p[0] ** 2:.5f}")
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    ingest_files("fresh", [tmp_path / "runs.csv"])
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_SECONDS)
    at.session_state["project"] = "fresh"
    at.run()
    assert not at.exception, at.exception
    assert any("No laws fitted" in i.value for i in at.info)
    assert not list_jobs("fresh")  # opening the page started nothing

    at.radio[0].set_value("weighted").run()
    weights = at.text_input[0].value
    assert weights == "web=0.3333,code=0.3333,books=0.3333"  # every target, summing to one
    at.radio[0].set_value("mean of all targets").run()
    at.multiselect[0].set_value(["linear"]).run()
    next(b for b in at.button if b.label == "Fit laws").click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while list_jobs("fresh", live_only=True):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    at.run()
    assert not at.exception, at.exception
    [job] = list_jobs("fresh")
    assert job.kind == "fit" and job.state == "done"
    table = at.dataframe[0].value
    assert list(table["law"]) == ["linear"]
