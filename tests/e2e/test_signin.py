"""Sign-in with a real OpenID Connect provider (oidc-provider-mock) and a real Chromium.

Signed-out visitors see only the sign-in page (no page, no action is reachable,
not even by URL); a user signed in at the provider works as before; an upload is
recorded in the action log under that user's e-mail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.store import Action, session_scope

sys.path.insert(0, str(Path(__file__).parent))
from test_browser import CHROMIUM_ARGS, STEP_MS, chromium, free_port, mixplan_executable  # noqa: E402,F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EMAIL = "alice@example.org"
TIDY = """run_id,tokens,mix:web,mix:code,loss:web
r1,1000,0.7,0.3,3.5
r2,1000,0.2,0.8,3.9
"""


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"{process.args[:3]} exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {seconds} s:\n{log.read_text()}")
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and nothing else
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def provider(tmp_path):
    """A real OIDC provider on 127.0.0.1 that knows one user, alice, with her e-mail claim."""
    pytest.importorskip("oidc_provider_mock", reason="pip install oidc-provider-mock (in the test extra)")
    port = free_port()
    log = tmp_path / "oidc.log"
    claims = json.dumps({"sub": "alice", "email": EMAIL, "name": "Alice"})
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port",
                                    str(port), "--user-claims", claims], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    issuer = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{issuer}/.well-known/openid-configuration", process, log)
        yield issuer
    finally:
        stop(process)


@pytest.fixture
def signed_dashboard(tmp_path, provider):
    port = free_port()
    auth = tmp_path / "auth.toml"
    auth.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "a-long-random-test-secret-0123456789"\n'
        'client_id = "mixplan"\nclient_secret = "mixplan-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    home = tmp_path / "home"
    env = dict(os.environ, MIXPLAN_HOME=str(home), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    env.pop("MIXPLAN_DATABASE_URL", None)
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        process = subprocess.Popen([mixplan_executable(), "dashboard", "--port", str(port), "--auth-file", str(auth)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/_stcore/health", process, log)
        yield url, f"sqlite:///{home / 'mixplan.sqlite'}"
    finally:
        stop(process)


def test_signed_out_visitors_see_only_sign_in_and_a_signed_in_upload_is_recorded(signed_dashboard, chromium, tmp_path):
    from playwright.sync_api import expect

    url, db = signed_dashboard
    expect.set_options(timeout=STEP_MS)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(STEP_MS)

    for path in ("", "/upload", "/projects"):  # no page behind the gate, even by its URL
        page.goto(url + path)
        expect(page.get_by_text("Sign in to see and change this team's projects.")).to_be_visible()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        expect(page.get_by_role("link", name="Upload")).to_have_count(0)
        expect(page.get_by_role("heading", name="Projects", exact=True)).to_have_count(0)

    page.goto(url)  # (an unknown page's URL leaves Streamlit's "page not found" dialog open)
    page.get_by_role("button", name="Sign in").click()
    page.locator('input[name="sub"]').fill("alice")  # the provider's own sign-in form
    page.get_by_role("button", name="Authorize").click()

    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Signed in as {EMAIL}")).to_be_visible()
    page.get_by_label("Name").fill("team")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_text("Created project 'team'")).to_be_visible()

    page.get_by_role("link", name="Upload").click()
    expect(page.get_by_role("heading", name="Upload", exact=True)).to_be_visible()
    csv = tmp_path / "runs.csv"
    csv.write_text(TIDY)
    uploader = page.locator('[data-testid="stFileUploader"]')
    uploader.locator('input[type="file"]').set_input_files([str(csv)])
    expect(uploader.locator('[data-testid="stFileChip"]')).to_have_count(1)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("2 runs added", exact=False)).to_be_visible()
    page.screenshot(path=str(tmp_path / "signed-in-upload.png"), full_page=True)

    with session_scope(db) as s:
        actions = [(a.actor, a.kind, a.project) for a in s.scalars(select(Action).order_by(Action.id))]
    assert (EMAIL, "create-project", "team") in actions
    assert (EMAIL, "upload", "team") in actions
    assert not any(kind == "upload" and actor != EMAIL for actor, kind, _ in actions)
