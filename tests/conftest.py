"""Shared fixtures: a database URL per backend (SQLite file and a real PostgreSQL server).

``db_url`` is parametrised over both backends; tests that take it run twice.
The PostgreSQL server is started once per session by the suite itself; it is
skipped (with the reason) only where no server binary exists, and CI installs one.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pg_server import start_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REGMIX_DIR = REPO.parent / "shared" / "data" / "regmix"
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def regmix_dir() -> Path:
    if not (REGMIX_DIR / "train_mixture_1m.csv").exists():
        pytest.skip(f"RegMix logs not found at {REGMIX_DIR} (they live in ../shared/data/regmix)")
    return REGMIX_DIR


@pytest.fixture(scope="session")
def mixplan_command() -> list[str]:
    """The console script installed with the interpreter running the tests (``.venv/bin/mixplan``):
    never one found on PATH, which a fresh machine does not have (or has from another checkout)."""
    script = Path(sys.executable).parent / "mixplan"
    if not script.exists():
        pytest.fail(f"no console script at {script}; install the project into this venv (pip install -e .)")
    return [str(script)]


@pytest.fixture(scope="session")
def pg_server():
    if os.environ.get("MIXPLAN_TEST_NO_PG"):
        pytest.skip("MIXPLAN_TEST_NO_PG is set")
    server = start_server()
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL server binaries found; CI must install postgresql")
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    yield server
    server.stop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mixplan.sqlite'}"


@pytest.fixture
def pg_url(pg_server) -> str:
    return pg_server.create_database(f"t{os.getpid()}_{next(_db_counter)}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mixplan.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Never touch the user's ~/.mixplan or MIXPLAN_DATABASE_URL from tests."""
    monkeypatch.setenv("MIXPLAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MIXPLAN_DATABASE_URL", raising=False)
    monkeypatch.setenv("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    yield
    from engine.store import dispose_engines

    dispose_engines()
