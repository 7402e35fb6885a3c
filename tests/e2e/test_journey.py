"""The newcomer's journey in a real browser, from the demo's plan to a trained pending run.

open (the demo's plan is there) -> create a project -> upload the RegMix pair -> Runs -> fit (a job with
progress) -> plan at 25B -> github >= 0.05 -> every download parses -> on the demo: suggest 4 runs -> train
one, tiny, here -> its result completes it and the plan refreshes -> reload mid-job: still running ->
a broken upload names file/row/column and changes nothing. The server log has no deprecation warning,
no traceback and no Streamlit call from a job thread.

Screenshots of Plan, Fit and Next runs at 1400x900 go to $MIXPLAN_SCREENSHOTS (default: the test's tmp dir).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_browser import chromium, dashboard  # noqa: E402,F401  the real server and browser fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.journey]

STEP_MS = 120_000
FIT_MS = 1_500_000  # CV and bootstrap on 512 runs, on a shared 2-core machine
VIEW = {"width": 1400, "height": 900}


# Streamlit keeps the previous run's elements on screen, marked stale, until the rerun that replaces them
# ends: when a rerun moves a widget (a result appears above it), its old copy lingers for a moment. Every
# widget the test touches is looked up among the current run's elements only.
CURRENT = '[data-testid="stElementContainer"]:not([data-stale="true"])'


def current(page):
    return page.locator(CURRENT)


def fill(page, label: str, value: str, *, submit: bool = False) -> None:
    """Type into the current run's textbox ``label`` and check it holds the value (a rerun may replace it)."""
    from playwright.sync_api import expect

    box = current(page).get_by_role("textbox", name=label, exact=True)
    expect(box).to_have_count(1)
    box.fill(value)
    expect(box).to_have_value(value)
    if submit:
        box.press("Enter")


def click(page, name: str) -> None:
    """Click the current run's button ``name`` (exactly one)."""
    from playwright.sync_api import expect

    button = current(page).get_by_role("button", name=name, exact=True)
    expect(button).to_have_count(1)
    button.click()


def screenshot(page, path: Path, top) -> None:
    """A 1400x900 picture of the settled page (no rerun in flight, no stale element), ``top`` at its top."""
    page.wait_for_function("""() => !document.querySelector('[data-testid="stStatusWidget"]')
                                    && !document.querySelector('[data-stale="true"]')""", timeout=STEP_MS)
    top.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(path))


def nav(page, name: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=name, exact=True).click()
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()


def choose_project(page, name: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    nav(page, "Projects")
    box = current(page).get_by_role("combobox", name="Current project")
    expect(box).to_have_count(1)
    option = page.get_by_role("option", name=name, exact=True)
    deadline = time.monotonic() + STEP_MS / 1000
    while box.input_value() != name:
        # A rerun that lands while the list is open closes it: open it again until the choice holds.
        box.click()
        try:
            option.click(timeout=15_000)
            expect(box).to_have_value(name, timeout=15_000)
        except (PlaywrightTimeout, AssertionError):
            assert time.monotonic() < deadline, f"could not choose project {name!r}"
    expect(box).to_have_value(name)
    # The server has taken the choice once the page shows that project (only the demo has this box): leaving
    # the page before its rerun began could drop the change and leave the old project selected.
    demo_box = current(page).get_by_text("Demo project.")
    expect(demo_box).to_have_count(1 if name == "demo" else 0)


def no_job_running(page) -> None:
    """No progress bar of a job left in the page (each polls its job and the page reruns when it ends)."""
    from playwright.sync_api import expect

    expect(page.locator('[data-testid="stMain"] [data-testid="stProgress"]')).to_have_count(0, timeout=FIT_MS)


def parse_download(fmt: str, text: str) -> dict[str, float]:
    """Each export parsed the way its reader would; returns the shares it carries."""
    if fmt == "json":
        return json.loads(text)["recommended"]["mixture"]
    if fmt == "yaml":
        return yaml.safe_load(text)["recommended"]["mixture"]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows and "option" in rows[0]
        return {}
    if fmt == "megatron":
        tokens = shlex.split(text)
        assert tokens[0] == "--data-path"
        weights = [float(w) for w in tokens[1::2]]
        assert abs(sum(weights) - 1.0) < 1e-3
        return {}
    ast.parse(text)  # hf and mosaic: Python snippets
    return {}


def test_the_newcomer_journey(dashboard, chromium, regmix_dir, tmp_path):
    from playwright.sync_api import expect

    shots = Path(os.environ.get("MIXPLAN_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=STEP_MS)
    page = chromium.new_page(viewport=VIEW)
    page.set_default_timeout(STEP_MS)
    page.goto(dashboard)
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible(timeout=300_000)

    # 1. The demo opens on a finished plan: no job, no error.
    nav(page, "Plan")
    expect(page.get_by_text("Predicted objective", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Recommended mixture against the baselines")).to_be_visible()
    expect(page.get_by_text("No plan yet")).to_have_count(0)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)

    # 2. A project of its own, the RegMix pair uploaded through the page.
    nav(page, "Projects")
    fill(page, "Name", "regmix")
    click(page, "Create project")
    expect(page.get_by_text("Created project 'regmix'")).to_be_visible()
    choose_project(page, "regmix")
    nav(page, "Upload")
    expect(page.get_by_text("Logs go into project regmix")).to_be_visible()
    uploader = page.locator('[data-testid="stFileUploader"]')
    uploader.locator('input[type="file"]').set_input_files(
        [str(regmix_dir / "train_mixture_1m.csv"), str(regmix_dir / "train_pile_loss_1m.csv")])
    expect(uploader.locator('[data-testid="stFileChip"]')).to_have_count(2)
    click(page, "Import")
    expect(page.get_by_text("512 runs added", exact=False)).to_be_visible()
    nav(page, "Runs")
    expect(page.get_by_role("heading", name="512 runs", exact=True)).to_be_visible()

    # 3. Fit: a job with progress, then the comparison.
    nav(page, "Fit")
    expect(page.get_by_text("No laws fitted for this objective yet")).to_be_visible()
    for law in ("gp", "exponential"):  # the two slowest laws: minutes on a loaded 2-core machine
        click(page, f"Remove {law}")
        expect(page.get_by_role("button", name=f"Remove {law}")).to_have_count(0)
    click(page, "Fit laws")
    # The engine's progress events on the page: the law being fitted and its stage.
    fitting = page.locator('[data-testid="stMain"] [data-testid="stProgress"]').filter(
        has_text=re.compile(r"Fit \(job \d+\): fit: (linear|lightgbm)"))
    expect(fitting.first).to_be_visible()
    expect(page.get_by_role("heading", name="Comparison on held-out runs")).to_be_visible(timeout=FIT_MS)
    screenshot(page, shots / "fit.png", page.get_by_role("heading", name="Fit", exact=True))

    # 4. Plan at 25B, then github >= 0.05: the plan is computed as a job and shown.
    nav(page, "Plan")
    fill(page, "Token budget", "25B", submit=True)
    expect(page.get_by_text("Budget 25B tokens", exact=False)).to_be_visible(timeout=FIT_MS)
    fill(page, "Bounds", "github >= 0.05", submit=True)
    expect(page.get_by_text("Shown: the last plan", exact=False)).to_have_count(0, timeout=FIT_MS)
    no_job_running(page)
    screenshot(page, shots / "plan.png", page.get_by_text("Constraints per domain", exact=True))

    # 5. Every download yields a file that parses; the JSON and YAML carry github >= 0.05.
    for fmt in ("json", "yaml", "megatron", "hf", "mosaic", "csv"):
        button = current(page).get_by_role("button", name=fmt, exact=True)
        expect(button).to_have_count(1)  # a rerun's stale copy (an expired file link) has faded out
        with page.expect_download() as info:
            button.click()
        text = Path(info.value.path()).read_text(encoding="utf-8")
        shares = parse_download(fmt, text)
        if shares:
            assert shares["github"] >= 0.05 - 1e-6, shares
            assert abs(sum(shares.values()) - 1.0) < 1e-6

    # 6. On the demo: suggest 4 runs (a job), build the demo corpus, train one tiny pending run here.
    choose_project(page, "demo")
    nav(page, "Next runs")
    click(page, "Suggest runs")
    expect(page.get_by_text("4 pending: next-r1-01", exact=False)).to_be_visible(timeout=FIT_MS)
    # the current run's metric: a rerun that inserts a message above it leaves the old copy on screen, stale,
    # until the run ends (a fresh-clone run saw both, "48" and "49", and failed on the two)
    runs_metric = current(page).locator('[data-testid="stMetric"]').filter(has_text="Runs in the project")
    expect(runs_metric.locator('[data-testid="stMetricValue"]')).to_have_text("48")

    nav(page, "Train")
    click(page, "Build the demo corpus here")
    expect(page.get_by_role("button", name="Launch sweep")).to_be_visible(timeout=300_000)  # the page updates itself

    nav(page, "Next runs")
    fill(page, "Tokens per run", "16k")
    click(page, "Train them here")
    expect(page.get_by_text("Training 1 run(s)", exact=False)).to_be_visible()
    expect(page.get_by_text("Results arrived for next-r1-04", exact=False)).to_be_visible(timeout=600_000)
    expect(runs_metric.locator('[data-testid="stMetricValue"]')).to_have_text("49")
    no_job_running(page)  # the refreshed plan's job has finished
    expect(page.get_by_text("Shown: the plan before the newest results")).to_have_count(0)
    expect(page.get_by_role("heading", name="How the plan moved, round by round")).to_be_visible()
    screenshot(page, shots / "next_runs.png", page.get_by_role("heading", name="Next runs", exact=True))

    # 7. Reload in the middle of a job: it is still running, from the store; then cancel it.
    fill(page, "Tokens per run", "5M")
    click(page, "Train them here")
    expect(page.get_by_text("training (sweep job", exact=False)).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Next runs", exact=True)).to_be_visible()
    expect(page.locator('[data-testid="stSidebar"]').get_by_text("job(s) running", exact=False)).to_be_visible()
    expect(page.get_by_text("training (sweep job", exact=False)).to_be_visible()
    current(page).get_by_role("button", name="Cancel").first.click()
    no_job_running(page)

    # 8. A broken upload names the file, row and column, and changes nothing. The count before it is read from
    # the page: the cancelled run may have committed its first evaluation before the cancel (49 or 50 runs).
    nav(page, "Runs")
    heading = current(page).get_by_role("heading", name=re.compile(r"^\d+ runs$"))
    expect(heading).to_be_visible()
    runs_before = heading.inner_text().strip()
    assert runs_before in ("49 runs", "50 runs"), runs_before
    broken = tmp_path / "broken.csv"
    broken.write_text("run_id,tokens,mix:code,mix:prose,loss:code\nb1,1000,0.5,0.5,3.1\nb2,1000,0.5,abc,3.2\n")
    nav(page, "Upload")
    uploader = page.locator('[data-testid="stFileUploader"]')
    uploader.locator('input[type="file"]').set_input_files([str(broken)])
    expect(uploader.locator('[data-testid="stFileChip"]')).to_have_count(1)  # uploaded before Import is pressed
    click(page, "Import")
    error = page.locator('[data-testid="stAlertContentError"]').first
    expect(error).to_contain_text("broken.csv")
    expect(error).to_contain_text("line 3")  # the file's third line: the second data row
    expect(error).to_contain_text("mix:prose")
    expect(error).to_contain_text("nothing was imported")
    nav(page, "Runs")
    expect(page.get_by_role("heading", name=runs_before, exact=True)).to_be_visible()

    log = (tmp_path / "dashboard.log").read_text(errors="replace")
    assert "deprecat" not in log.lower(), log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "missing ScriptRunContext" not in log, log[-3000:]  # a job thread asked Streamlit for a session
