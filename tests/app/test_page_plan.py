"""AppTest of the Plan page: the plan (a job), baselines, sweep, what-if and exports a user sees."""

from __future__ import annotations

from pathlib import Path

import time

import numpy as np
from streamlit.testing.v1 import AppTest

from engine.plan.synthetic import truth
from engine.services.ingest import ingest_files, set_domain_metadata
from engine.services.jobs import list_jobs

PAGE = Path(__file__).resolve().parents[2] / "app" / "pages" / "plan.py"
TIMEOUT_SECONDS = 180
DOMAINS = ["web", "code", "books"]


def planning_project(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    mixtures = rng.dirichlet(np.ones(3), 30)
    law = truth(np.array([0.2, 0.15, 0.1]), DOMAINS)
    lines = ["run_id,tokens,mix:web,mix:code,mix:books,loss:web,loss:code"]
    for i, p in enumerate(mixtures):
        y = law.predict(p[None])[0]
        lines.append(f"r{i},1000000000,{p[0]:.6f},{p[1]:.6f},{p[2]:.6f},{y + rng.normal(0, .01):.5f},"
                     f"{y - 0.2 * p[1] + rng.normal(0, .01):.5f}")
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    ingest_files("page-plan", [tmp_path / "runs.csv"])
    for domain, unique in zip(DOMAINS, ["1T", "20B", "1B"]):
        set_domain_metadata("page-plan", domain, unique_tokens=unique, tags={"license": "nc"} if domain == "code" else {})
    from engine.services.fits import fit_project
    fit_project("page-plan", laws=["exponential", "lightgbm"], folds=3, bootstrap=12)
    return "page-plan"


def settle(at: AppTest, project: str, seconds: float = TIMEOUT_SECONDS) -> AppTest:
    """Rerun the page until no job of the project is live (the page polls; AppTest does not run timers)."""
    deadline = time.monotonic() + seconds
    while list_jobs(project, live_only=True):
        assert time.monotonic() < deadline, "jobs still running"
        time.sleep(0.2)
    at.run()
    assert not at.exception, at.exception
    return at


def open_plan_page(project: str) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_SECONDS)
    at.session_state["project"] = project
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_plan_page_plans_as_a_job_then_shows_plan_baselines_sweep_and_exports(tmp_path):
    project = planning_project(tmp_path)
    at = open_plan_page(project)
    assert at.title[0].value == "Plan"
    assert any("first one is being computed" in i.value for i in at.info)  # no plan yet: a job, not a wait
    # The budget defaults to what the data can feed: half of (1T + 20B + 1B) x 4 epochs, 2 digits.
    assert at.text_input(key=f"plan_budget_{project}").value == "2T"
    at = settle(at, project)
    at = settle(at, project)  # the plan's result starts the sweep job
    predicted = float(metric(at, "Predicted objective"))
    assert np.isfinite(predicted)
    options = next(df.value for df in at.dataframe if "option" in df.value.columns)
    assert list(options["option"])[:1] == ["plan"]
    assert {"uniform", "natural", "unimax", "best observed run"} <= set(options["option"])
    subheaders = [h.value for h in at.subheader]
    for heading in ["Recommended mixture against the baselines", "Budget sweep", "Epochs per domain", "What if",
                    "Next runs to pay for", "Export"]:
        assert heading in subheaders
    assert not at.warning  # nothing stale, no "No plan at ..." boxes
    downloads = at.get("download_button")
    assert len(downloads) == 6  # json, yaml, megatron, hf, mosaic, csv
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert len(charts) == 5  # mixture bars, objectives, epochs, sweep shares, sweep objective

    # What if: a slider answers from the laws the plan's job loaded, without a job.
    at.slider(key=f"whatif_{project}_web").set_value(0.5).run()
    assert not at.exception, at.exception
    edited = float(metric(at, "Predicted objective of the edited mixture"))
    assert np.isfinite(edited) and edited != predicted

    # A larger budget: the last plan stays on screen, marked stale, while the new one is computed.
    at.text_input(key=f"plan_budget_{project}").set_value("1T").run()
    assert not at.exception, at.exception
    assert any("Shown: the last plan" in w.value for w in at.warning)
    at = settle(at, project)
    assert not any("Shown: the last plan" in w.value for w in at.warning)
    assert float(metric(at, "Predicted objective")) != predicted


def test_plan_page_explains_bad_budget_and_infeasible_caps_in_page_words(tmp_path):
    project = planning_project(tmp_path)
    at = settle(open_plan_page(project), project)
    at.text_input(key=f"plan_budget_{project}").set_value("lots").run()
    assert not at.exception
    assert any("is not a budget" in e.value and "Token budget" in e.value for e in at.error)
    at.text_input(key=f"plan_budget_{project}").set_value("100T").run()
    at.text_input(key="plan_exclude_tags").set_value("license=nc").run()
    at = settle(at, project)
    errors = [e.value for e in at.error]
    assert any("allow at most" in e for e in errors), errors
    assert not any("--max-epochs" in e for e in errors)


def test_plan_page_on_an_empty_project_invites_an_upload(tmp_path):
    from engine.services.projects import create_project

    create_project("empty")
    at = open_plan_page("empty")
    assert not at.error
    assert any("no runs yet" in i.value for i in at.info)
