"""Benchmark: how fast the dashboard answers a person, in a real browser.

Run: ``python bench/ui_latency.py`` from the repository root (``--repeats N`` rounds of the journey per
project, default 3; ``--skip-synthetic``: RegMix only). 15 min on a 2-core machine at load 15 (setup 3 min).

Drives ``mixplan dashboard`` (a fresh database in a temporary MIXPLAN_HOME, a free port) with Debian's
Chromium through Playwright, headless, 1400x900, through a fixed journey on two projects:

* ``regmix``: the 512 RegMix runs (17 domains, 13 targets) from ../shared/data/regmix, fitted before
  the clock starts with every default law, as a user has them after the Fit page's job (the plan then
  uses the CV winner, as on a user's machine; until 2026-11-29 this setup fitted linear and LightGBM only,
  so its plans were LightGBM's);
* ``synthetic``: 512 runs x 64 domains x 110 targets from ``engine.plan.synthetic.synthetic_swarm``
  (seeded), with unique tokens per domain, fitted the same way (about a minute of setup).

Each interaction is timed from the click or keystroke until the page has returned control: Streamlit's
"running" indicator is gone and the element the interaction should show is visible. Plan results are
timed separately ("plan result"): from typing a new budget until the plan for it is on screen (the
planner runs as a job; the page shows the last plan meanwhile). Prints p50/p95 per interaction, the
machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGMIX = ROOT.parent / "shared" / "data" / "regmix"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEW = {"width": 1400, "height": 900}
TIMEOUT_MS = 300_000
# The current run's elements only: a rerun that moves a widget leaves its old copy on screen, marked stale.
CURRENT = '[data-testid="stElementContainer"]:not([data-stale="true"])'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_files(folder: Path, runs: int = 512, domains: int = 64, targets: int = 110, seed: int = 0) -> list[Path]:
    """The engine's synthetic swarm (:func:`engine.plan.synthetic.synthetic_swarm`: RegMix-style sparse
    mixtures, losses from a known power law) as a tidy CSV, and seeded unique tokens per domain."""
    from engine.plan.synthetic import synthetic_swarm

    swarm = synthetic_swarm(runs, domains, targets, seed=seed)
    header = ["run_id", "tokens", *(f"mix:{d}" for d in swarm.domains), *(f"loss:{t}" for t in swarm.targets)]
    lines = [",".join(header)]
    for i in range(runs):
        shares = swarm.mixtures[i] / swarm.mixtures[i].sum()
        lines.append(",".join([f"s{i:04d}", "1000000000", *(f"{v:.8f}" for v in shares),
                               *(f"{v:.6f}" for v in swarm.values[i])]))
    runs_path = folder / "synthetic_runs.csv"
    runs_path.write_text("\n".join(lines) + "\n")
    unique = np.random.default_rng(seed).uniform(1e9, 2e11, domains)
    meta = folder / "synthetic_domains.csv"
    meta.write_text("domain,unique_tokens\n" + "\n".join(f"{d},{int(u)}" for d, u in zip(swarm.domains, unique)) + "\n")
    return [runs_path, meta]


def prepare(url: str, tmp: Path, with_synthetic: bool) -> dict[str, float]:
    """Ingest and fit both projects (not timed as UI latency; reported as setup seconds)."""
    from engine.services.fits import fit_project
    from engine.services.ingest import ingest_files

    seconds = {}
    started = time.perf_counter()
    ingest_files("regmix", [REGMIX / "train_mixture_1m.csv", REGMIX / "train_pile_loss_1m.csv"], url=url)
    fit_project("regmix", url=url)  # every default law, as the Fit page's job fits them
    seconds["regmix ingest+fit"] = time.perf_counter() - started
    if with_synthetic:
        started = time.perf_counter()
        ingest_files("synthetic", synthetic_files(tmp), url=url)
        fit_project("synthetic", url=url)
        seconds["synthetic ingest+fit"] = time.perf_counter() - started
    return seconds


def start_server(home: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, MIXPLAN_HOME=str(home), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
               PYTHONPATH=str(ROOT))
    env.pop("MIXPLAN_DATABASE_URL", None)
    log = (home / "dashboard.log").open("wb")
    server = subprocess.Popen([sys.executable, "-c", "from engine.cli import main; main()", "dashboard",
                               "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(ROOT))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return server
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGTERM)
    raise SystemExit("the dashboard did not start; see " + str(home / "dashboard.log"))


class Journey:
    def __init__(self, page):
        self.page = page
        self.times: dict[str, list[float]] = {}

    def idle(self) -> None:
        """Wait until the script run is over (the app's own ``data-test-script-state``), Streamlit no longer shows
        its running indicator and nothing on the page is stale.

        The script state is checked since 2026-11-29: the indicator appears only after a run has lasted a
        while, so a page whose heading was up could still be running, and the next interaction paid the rest
        (a Runs search typed right after opening Runs: 1.0-1.3 s, 0.2 s after a pause)."""
        self.page.wait_for_function(
            """() => {
                 const app = document.querySelector('[data-testid="stApp"]');
                 const state = app ? app.getAttribute('data-test-script-state') : null;
                 return state !== 'running' && state !== 'rerunRequested'
                     && !document.querySelector('[data-testid="stStatusWidget"]')
                     && !document.querySelector('[data-stale="true"]');
               }""", timeout=TIMEOUT_MS)

    def timed(self, name: str, action, done) -> None:
        started = time.perf_counter()
        action()
        done()
        self.idle()
        self.record(name, time.perf_counter() - started)

    def record(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)
        print(f"  {name}: {seconds:.2f} s", file=sys.stderr, flush=True)  # progress while it runs

    def nav(self, label: str, project: str) -> None:
        from playwright.sync_api import expect

        link = self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=label, exact=True)
        self.timed(f"{project}: open {label}", link.click,
                   lambda: expect(self.page.get_by_role("heading", name=label, exact=True)).to_be_visible(timeout=TIMEOUT_MS))

    def choose_project(self, project: str) -> None:
        from playwright.sync_api import expect

        self.nav("Projects", project)
        self.page.locator('[data-testid="stSelectbox"]').filter(has_text="Current project").click()
        self.timed(f"{project}: choose project", lambda: self.page.get_by_role("option", name=project, exact=True).click(),
                   lambda: expect(self.page.get_by_role("combobox", name="Current project")).to_have_value(project))


def run_journey(page, project: str, repeats: int, budgets: list[str], results: Journey) -> None:
    from playwright.sync_api import expect

    j = results
    j.choose_project(project)
    for r in range(repeats):
        for label in ("Runs", "Fit", "Plan", "Next runs", "Upload", "Projects"):
            j.nav(label, project)
        j.nav("Runs", project)
        search = page.locator(CURRENT).get_by_role("textbox", name="Search runs")
        j.timed(f"{project}: Runs search", lambda: (search.fill(f"{r}"), search.press("Enter")),
                # this search's own caption: an earlier search's "runs match" may still be on screen
                lambda: expect(page.get_by_text(f"runs match '{r}'", exact=False)).to_be_visible(timeout=TIMEOUT_MS))
        j.nav("Plan", project)
        expect(page.get_by_text("Predicted objective", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
        j.idle()
        budget = page.locator(CURRENT).get_by_role("textbox", name="Token budget")
        text = budgets[r % len(budgets)]
        started = time.perf_counter()
        j.timed(f"{project}: Plan budget change (control back)", lambda: (budget.fill(text), budget.press("Enter")),
                lambda: None)
        expect(page.get_by_text(f"Budget {text} tokens", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_text("Shown: the last plan", exact=False)).to_have_count(0, timeout=TIMEOUT_MS)
        j.idle()
        j.record(f"{project}: Plan result after a new budget", time.perf_counter() - started)
        slider = page.locator(CURRENT).locator('[data-testid="stSlider"]').filter(has_text="d00" if project == "synthetic" else "github")
        if slider.count():
            thumb = slider.get_by_role("slider")
            j.timed(f"{project}: what-if slider step", lambda: (thumb.focus(), thumb.press("ArrowRight")),
                    lambda: expect(page.get_by_text("Predicted objective of the edited mixture")).to_be_visible())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the journey on each project")
    parser.add_argument("--skip-synthetic", action="store_true", help="only the RegMix project")
    args = parser.parse_args()
    if not (REGMIX / "train_mixture_1m.csv").exists():
        raise SystemExit(f"RegMix logs not found under {REGMIX}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    tmp = Path(tempfile.mkdtemp(prefix="mixplan-ui-bench-"))
    home = tmp / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'mixplan.sqlite'}"
    print(f"# ui_latency {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start")
    setup = prepare(url, tmp, not args.skip_synthetic)
    for what, seconds in setup.items():
        print(f"setup {what}: {seconds:.1f} s (not a UI figure)")
    server = start_server(home, free_port_value := free_port())
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEW)
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"http://127.0.0.1:{free_port_value}")
            page.get_by_role("heading", name="Projects", exact=True).wait_for(timeout=TIMEOUT_MS)
            journey = Journey(page)
            journey.idle()
            run_journey(page, "regmix", args.repeats, ["20B", "21B", "22B", "23B", "24B", "26B", "27B"], journey)
            if not args.skip_synthetic:
                run_journey(page, "synthetic", args.repeats, ["1T", "1.1T", "1.2T", "1.3T", "1.4T", "1.6T"], journey)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(f"{'interaction':58s} {'n':>3s} {'p50 s':>7s} {'p95 s':>7s}")
    for name, values in journey.times.items():
        print(f"{name:58s} {len(values):3d} {statistics.median(values):7.2f} {percentile(values, 0.95):7.2f}")
    print(f"load at end {os.getloadavg()[0]:.1f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
