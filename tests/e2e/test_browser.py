"""A real browser against a real `mixplan dashboard`: create a project, upload the RegMix pair, see 512 runs.

Playwright drives Debian's /usr/bin/chromium (never a downloaded browser); the
dashboard runs as a subprocess on a free port with its own database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
START_SECONDS = 90
STEP_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mixplan_executable() -> str:
    beside = Path(sys.executable).parent / "mixplan"  # the one installed with this interpreter (.venv or system)
    found = str(beside) if beside.exists() else shutil.which("mixplan")
    if found is None:
        pytest.fail("the `mixplan` command is not installed; run `pip install -e .`")
    return found


@pytest.fixture
def dashboard(tmp_path):
    """`mixplan dashboard` on a free port with a fresh database; yields its URL, stops it afterwards."""
    port = free_port()
    env = dict(os.environ, MIXPLAN_HOME=str(tmp_path / "home"), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    env.pop("MIXPLAN_DATABASE_URL", None)
    log_path = tmp_path / "dashboard.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([mixplan_executable(), "dashboard", "--port", str(port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"the dashboard exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not answer within {START_SECONDS} s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and nothing else
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture
def chromium():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_upload_the_regmix_pair_and_see_512_runs(dashboard, chromium, regmix_dir, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_MS)  # a busy 2-core machine: the first page load migrates and loads the demo
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(STEP_MS)
    page.goto(dashboard)

    # First start: the demo project is there and selected.
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    expect(page.get_by_text("Demo project.")).to_be_visible()
    expect(page.locator('[data-testid="stMetricValue"]').first).not_to_have_text("0")  # the demo's runs
    page.screenshot(path=str(tmp_path / "projects.png"), full_page=True)

    # A project of its own for the RegMix runs.
    page.get_by_label("Name").fill("regmix")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_text("Created project 'regmix'")).to_be_visible()

    # Upload both files of the pair through the page's file input.
    page.get_by_role("link", name="Upload").click()
    expect(page.get_by_role("heading", name="Upload", exact=True)).to_be_visible()
    expect(page.get_by_text("Logs go into project regmix")).to_be_visible()
    uploader = page.locator('[data-testid="stFileUploader"]')
    uploader.locator('input[type="file"]').set_input_files(
        [str(regmix_dir / "train_mixture_1m.csv"), str(regmix_dir / "train_pile_loss_1m.csv")]
    )
    expect(uploader.locator('[data-testid="stFileChip"]')).to_have_count(2)  # both files uploaded
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("512 runs added", exact=False)).to_be_visible()
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)

    # The Runs page counts them.
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("heading", name="512 runs", exact=True)).to_be_visible()
    runs_metric = page.locator('[data-testid="stMetric"]').filter(has_text="Runs").first
    expect(runs_metric.locator('[data-testid="stMetricValue"]')).to_have_text("512")
    page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)
