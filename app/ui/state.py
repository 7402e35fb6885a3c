"""Session state shared by the pages: the selected project, first-start setup, flash messages."""

from __future__ import annotations

import streamlit as st

PROJECT_KEY = "project"
FLASH_KEY = "_flash"


def ensure_ready() -> None:
    """Once per session: make sure the store exists and the demo project is loaded."""
    if st.session_state.get("_ready"):
        return
    from app.ui.errors import stop_on_error
    from engine.services.projects import ensure_demo_project, list_projects

    with stop_on_error():  # e.g. an unreachable MIXPLAN_DATABASE_URL: say so instead of a traceback
        demo = ensure_demo_project()
        names = [p.name for p in list_projects()]
    if PROJECT_KEY not in st.session_state:
        st.session_state[PROJECT_KEY] = demo if demo in names else (names[0] if names else None)
    st.session_state["_ready"] = True


def current_project() -> str | None:
    return st.session_state.get(PROJECT_KEY)


def set_current_project(name: str | None) -> None:
    st.session_state[PROJECT_KEY] = name


def require_project() -> str:
    """The selected project, or an info box and a stop when there is none (or it was deleted)."""
    from engine.services.projects import list_projects

    name = current_project()
    if name and name not in {p.name for p in list_projects()}:
        set_current_project(None)
        name = None
    if not name:
        st.info("No project selected. Create or select one on the **Projects** page.")
        st.stop()
    return name


def flash(kind: str, text: str) -> None:
    """Keep a message ("success", "info", "warning" or "error") to show on the next run of the page.

    Widget callbacks run before the page is drawn; their outcome is shown this way.
    """
    st.session_state[FLASH_KEY] = (kind, text)


def show_flash() -> None:
    message = st.session_state.pop(FLASH_KEY, None)
    if message is not None:
        kind, text = message
        from app.ui.text import plain

        getattr(st, kind)(plain(text))  # flash messages quote project and run names


def link(page: str, label: str, icon: str | None = None) -> None:
    """A link to another page; as bold text where the page runs without the app's navigation (a page file alone)."""
    from streamlit.errors import StreamlitPageNotFoundError

    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.markdown(f"**{label}**")
