"""User text is shown as text: a Markdown image in a project's description or an uploaded file's
column name never reaches the page as an image (every viewer's browser would fetch its address)."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from app.ui.text import plain
from engine.services.projects import create_project

ENTRY = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
IMAGE = "![x](http://127.0.0.1:9/beacon.png)"


def test_plain_leaves_no_markdown_image_link_or_html():
    shown = plain(f"{IMAGE} <img src=x> [a](http://h) :red[b] $x$ a_b*c*")
    assert not re.search(r"(?<!\\)[!\[\]<>:$_*]", shown), shown  # every active character escaped
    assert shown.replace("\\", "") == f"{IMAGE} <img src=x> [a](http://h) :red[b] $x$ a_b*c*"  # same text


def test_a_project_description_with_an_image_is_shown_escaped():
    create_project("p", description=f"see {IMAGE}")
    at = AppTest.from_file(str(ENTRY), default_timeout=120).run()
    at.session_state["project"] = "p"
    at.run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption if "beacon" in c.value]
    assert captions and all("![" not in c and "\\!\\[x\\]" in c for c in captions), captions


def test_a_target_name_with_an_image_is_shown_escaped(tmp_path):
    """Names come from uploads: a target called like a Markdown image is text on the Runs page."""
    from engine.services.ingest import ingest_files

    (tmp_path / "runs.csv").write_text(f"run_id,tokens,mix:a,mix:b,loss:{IMAGE}\n"
                                       "r0,1000,0.3,0.7,2.5\nr1,1000,0.6,0.4,2.4\n")
    ingest_files("p", [tmp_path / "runs.csv"])
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app" / "pages" / "runs.py"), default_timeout=120)
    at.session_state["project"] = "p"
    at.run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption if "beacon" in c.value]
    assert captions and all("![" not in c and "\\!\\[x\\]" in c for c in captions), captions
    at.text_input(key="runs_search").set_value("*r0*").run()  # a search is shown as typed, not as emphasis
    assert any("runs match '\\*r0\\*'" in c.value for c in at.caption), [c.value for c in at.caption]
