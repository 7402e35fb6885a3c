"""The app's top-level handler: no traceback or server path reaches the browser."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ENTRY = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"


def test_a_bug_shows_a_short_message_and_logs_the_traceback(tmp_path, monkeypatch):
    from engine.services import projects

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setenv("MIXPLAN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(projects, "list_projects", broken)
    at = AppTest.from_file(str(ENTRY), default_timeout=120).run()
    assert not at.exception, at.exception
    shown = [e.value for e in at.error]
    assert len(shown) == 1 and "This is a bug in mixplan" in shown[0] and "ZeroDivisionError" in shown[0], shown
    logs = list((tmp_path / "home" / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in shown[0]
    assert "Traceback" in logs[0].read_text() and "Traceback" not in shown[0]


def test_a_corrupt_database_is_explained_not_traced(tmp_path, monkeypatch):
    bad = tmp_path / "corrupt.sqlite"
    bad.write_bytes(b"not a database\x00" * 200)
    monkeypatch.setenv("MIXPLAN_DATABASE_URL", f"sqlite:///{bad}")
    at = AppTest.from_file(str(ENTRY), default_timeout=120).run()
    assert not at.exception, at.exception
    shown = " ".join(e.value for e in at.error)
    assert "not a mixplan database or is damaged" in shown and "Traceback" not in shown, shown
