"""Streamlit AppTest of the Projects, Upload and Runs pages: what a user sees.

The app runs against the test's own SQLite file (MIXPLAN_HOME points at a tmp
folder), so the first run is a first start: it loads the demo project.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.ui.text import plain
from engine.services.ingest import ingest_files
from engine.services.projects import create_project, list_projects

ENTRY = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
TIMEOUT_SECONDS = 120  # the first run migrates the database and loads the demo


def start(page: str | None = None, project: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT_SECONDS).run()
    assert not at.exception, at.exception
    if project is not None:
        at.session_state["project"] = project
    if page is not None:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def shown_runs(at: AppTest):
    """The Runs page's table of runs (the page also shows the domains editor and maybe a setups table)."""
    return next(df.value for df in at.dataframe if "run" in df.value.columns)


def counts() -> list[tuple[str, int, int, int]]:
    return [(p.name, p.runs, p.domains, p.targets) for p in list_projects()]


def as_shown(markdown: str) -> str:
    """The text a viewer reads: user text reaches Markdown escaped (app/ui/text.py), the browser drops the escapes."""
    return re.sub(r"\\(.)", r"\1", markdown)


def regmix_files(regmix_dir: Path) -> list[tuple[str, bytes, str]]:
    return [(name, (regmix_dir / name).read_bytes(), "text/csv")
            for name in ("train_mixture_1m.csv", "train_pile_loss_1m.csv")]


def test_first_start_shows_the_demo_project_with_its_runs():
    at = start()
    (demo,) = list_projects()
    assert demo.name == "demo" and demo.is_demo and demo.runs > 0
    assert at.title[0].value == "Projects"
    assert at.selectbox(key="project_select").value == "demo"
    assert metric(at, "Runs") == str(demo.runs)
    assert any(plain(demo.description) in info.value for info in at.info)  # escaped Markdown shows as typed
    table = at.dataframe[0].value
    assert list(table["project"]) == ["demo"] and list(table["runs"]) == [demo.runs]


def test_create_select_and_delete_a_project():
    at = start()
    at.text_input(key="new_project_name").set_value("pile-1m")
    at.text_area(key="new_project_description").set_value("RegMix 1M proxies")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    assert "Created project 'pile-1m'" in at.success[0].value
    assert at.selectbox(key="project_select").value == "pile-1m"
    assert [name for name, *_ in counts()] == ["demo", "pile-1m"]

    at.text_input(key="new_project_name").set_value("pile-1m")
    at.button[0].click().run()
    assert "already exists" in at.error[0].value
    assert len(counts()) == 2

    at.selectbox(key="delete_choice").set_value("pile-1m").run()
    assert at.button(key="delete_button").disabled  # not confirmed yet
    at.text_input(key="delete_confirm").set_value("pile-1m").run()
    at.button(key="delete_button").click().run()
    assert not at.exception
    assert "Deleted project 'pile-1m'" in at.success[0].value
    assert [name for name, *_ in counts()] == ["demo"]
    assert at.selectbox(key="project_select").value == "demo"
    assert not [b for b in at.button if b.key == "load_demo"]  # the demo is there


def test_a_deleted_demo_can_be_added_again():
    at = start()
    demo_runs = counts()[0][1]
    at.selectbox(key="delete_choice").set_value("demo").run()
    at.text_input(key="delete_confirm").set_value("demo").run()
    at.button(key="delete_button").click().run()
    assert counts() == [] and any("no projects yet" in i.value for i in at.info)
    at.button(key="load_demo").click().run()
    assert not at.exception
    assert "Loaded the demo project 'demo'" in at.success[0].value
    assert counts()[0][:2] == ("demo", demo_runs)
    assert at.selectbox(key="project_select").value == "demo"


def test_upload_the_regmix_pair_through_the_page_then_see_512_runs(regmix_dir):
    create_project("regmix")
    at = start("pages/upload.py", project="regmix")
    assert "regmix" in at.caption[0].value
    at.file_uploader[0].set_value(regmix_files(regmix_dir))
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith("Imported: ") and "'regmix'" in at.success[0].value
    assert metric(at, "Runs added") == "512"
    assert metric(at, "Domains") == "17" and metric(at, "Targets") == "13"
    assert ("regmix", 512, 17, 13) in counts()
    (notes,) = at.warning  # RegMix rows summing to 0.998..1.001 are renormalised: one box, not hundreds
    assert "renormalised" in notes.value and "more" in notes.value

    at.button[0].click().run()  # the same files again add nothing, and the page says so
    assert "already imported into 'regmix'" in at.info[0].value
    assert metric(at, "Runs added") == "0"

    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    assert metric(at, "Runs") == "512"
    table = shown_runs(at)
    assert len(table) == 512
    assert {"run", "pile_cc", "github", "arxiv", "arxiv (final)", "source file"} <= set(table.columns)
    assert table["arxiv (final)"].is_monotonic_increasing  # ranked by the selected target (lower is better)
    # The mixture chart draws an even sample of 200 bars (all 512 cost the browser a 0.35 s task), and says so.
    assert any("200 of 512 runs drawn" in c.value for c in at.caption), [c.value for c in at.caption]


def test_a_bad_upload_names_line_and_column_and_changes_nothing():
    create_project("broken")
    before = counts()
    at = start("pages/upload.py", project="broken")
    bad = b"run_id,tokens,mix:web,mix:code,loss:val\nr1,1000,0.5,0.5,3.1\nr2,1000,0.5,abc,3.0\n"
    at.file_uploader[0].set_value(("bad.csv", bad, "text/csv"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    (error,) = at.error
    assert "Rejected, nothing was imported" in error.value
    message = as_shown(error.value)
    assert "bad.csv" in message and "line 3" in message and "mix:code" in message
    assert not at.success
    assert counts() == before


def test_runs_page_of_the_demo_draws_mixtures_and_learning_curves():
    at = start("pages/runs.py")
    (demo,) = list_projects()
    assert metric(at, "Runs") == str(demo.runs)
    assert int(metric(at, "Runs with learning curves")) > 0
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert len(charts) == 2  # mixtures and learning curves
    targets = at.selectbox(key="runs_target").options
    at.selectbox(key="runs_target").set_value(targets[-1]).run()
    assert not at.exception
    assert f"{targets[-1]} (final)" in shown_runs(at).columns
    # the search filters the table (a rerun of the table's fragment only)
    name = str(shown_runs(at)["run"].iloc[0])
    at.text_input(key="runs_search").set_value(f" {name.upper()} ").run()  # case and spaces do not matter
    assert not at.exception
    assert name in set(shown_runs(at)["run"]) and len(shown_runs(at)) < int(metric(at, "Runs"))
    assert any("runs match" in c.value for c in at.caption)


@pytest.mark.parametrize("page", ["pages/upload.py", "pages/runs.py"])
def test_pages_without_a_project_say_what_to_do(page):
    at = start(project=None)
    at.session_state["project"] = None
    at.switch_page(page).run()
    assert not at.exception
    assert "No project selected" in at.info[0].value
    assert not at.file_uploader and not at.dataframe


def test_runs_page_of_an_empty_project_points_to_upload():
    create_project("empty")
    at = start("pages/runs.py", project="empty")
    assert "has no runs yet" in at.info[0].value


def test_runs_service_and_page_agree_after_a_service_import(regmix_dir):
    ingest_files("svc", [regmix_dir / "train_mixture_1m.csv", regmix_dir / "train_pile_loss_1m.csv"])
    at = start("pages/runs.py", project="svc")
    assert len(shown_runs(at)) == 512
    assert "512 runs" in [h.value for h in at.subheader]


def test_domain_metadata_edited_on_the_runs_page_reaches_the_store():
    from engine.services.runs import list_domains

    at = start("pages/runs.py")
    assert any("unique_tokens" in df.value.columns for df in at.dataframe)  # the domains editor
    domains = {d.name: d for d in list_domains("demo")}
    name = next(iter(domains))
    at.session_state["domains_editor"] = {"edited_rows": {0: {"unique_tokens": "1.5B", "tags": "quality=high"}},
                                          "added_rows": [], "deleted_rows": []}
    at.button(key="domains_save").click().run()
    assert not at.exception, at.exception
    assert "Saved metadata of 1 domain(s)." in at.success[0].value
    after = {d.name: d for d in list_domains("demo")}[name]
    assert after.unique_tokens == 1_500_000_000 and after.tags["quality"] == "high"
    assert after.tags.items() >= domains[name].tags.items()  # existing tags kept


def test_runs_from_different_setups_are_flagged(tmp_path):
    logs = tmp_path / "mixed.jsonl"
    logs.write_text(
        '{"run_id": "a", "mixture": {"web": 1.0}, "model_params": 1000000, "measurements": [{"target": "loss", "value": 3.0}]}\n'
        '{"run_id": "b", "mixture": {"web": 1.0}, "model_params": 8000000, "measurements": [{"target": "loss", "value": 2.5}]}\n'
    )
    ingest_files("mixed", [logs])
    at = start("pages/runs.py", project="mixed")
    assert "2 different setups" in at.warning[0].value
    assert list(shown_runs(at)["run"]) == ["b", "a"]  # best (lowest) loss first


def test_an_unreachable_database_is_reported_not_raised(monkeypatch):
    monkeypatch.setenv("MIXPLAN_DATABASE_URL", "postgresql+psycopg://mixplan@127.0.0.1:1/nowhere")
    at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT_SECONDS).run()
    assert not at.exception
    message = as_shown(at.error[0].value)
    assert "cannot open the database" in message and "MIXPLAN_DATABASE_URL" in message


def test_upload_jsonl_runs_with_domain_metadata_through_the_page():
    from engine.services.runs import list_domains

    synthetic = ENTRY.parents[1] / "examples" / "synthetic"
    create_project("synthetic")
    at = start("pages/upload.py", project="synthetic")
    at.file_uploader[0].set_value([
        ("runs.jsonl", (synthetic / "runs.jsonl").read_bytes(), "application/jsonl"),
        ("domains.csv", (synthetic / "domains.csv").read_bytes(), "text/csv"),
    ])
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metric(at, "Runs added") == "40" and metric(at, "Measurements added") == str(40 * 4 * 3)
    assert {d.name: d.unique_tokens for d in list_domains("synthetic")}["wiki"] == 80_000_000
