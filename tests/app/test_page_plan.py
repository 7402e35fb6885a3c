"""AppTest of the Plan page: the plan, baselines, sweep, what-if, suggestions and exports a user sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from engine.plan.synthetic import truth
from engine.services.ingest import ingest_files, set_domain_metadata

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


def open_plan_page(project: str) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_SECONDS)
    at.session_state["project"] = project
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_plan_page_shows_plan_baselines_sweep_and_exports(tmp_path):
    at = open_plan_page(planning_project(tmp_path))
    assert at.title[0].value == "Plan"
    predicted = float(metric(at, "Predicted objective"))
    assert np.isfinite(predicted)
    options = next(df.value for df in at.dataframe if "option" in df.value.columns)
    assert list(options["option"])[:1] == ["plan"]
    assert {"uniform", "natural", "unimax", "best observed run"} <= set(options["option"])
    assert any("prior" in info.value for info in at.info)  # one budget, no repetition: priors, said so
    subheaders = [h.value for h in at.subheader]
    for heading in ["Recommended mixture against the baselines", "Budget sweep", "Epochs per domain", "What if",
                    "Next runs to pay for", "Export"]:
        assert heading in subheaders
    suggestions = next(df.value for df in at.dataframe if "spread" in df.value.columns)
    assert len(suggestions) == 8
    downloads = at.get("download_button")
    assert len(downloads) == 7  # suggested runs + json, yaml, megatron, hf, mosaic, csv

    # a larger budget: the small domain reaches its cap and the prediction moves
    at.text_input(key="plan_budget").set_value("2T").run()
    assert not at.exception, at.exception
    assert float(metric(at, "Predicted objective")) != predicted


def test_plan_page_explains_bad_budget_and_infeasible_caps(tmp_path):
    at = open_plan_page(planning_project(tmp_path))
    at.text_input(key="plan_budget").set_value("lots").run()
    assert not at.exception
    assert any("is not a budget" in e.value for e in at.error)
    at.text_input(key="plan_budget").set_value("100T").run()
    at.text_input(key="plan_exclude_tags").set_value("license=nc").run()
    assert not at.exception
    assert any("allow at most" in e.value for e in at.error)
