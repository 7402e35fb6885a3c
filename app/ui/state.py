"""Session state shared by the pages: the selected project, first-start setup."""

from __future__ import annotations

import streamlit as st

PROJECT_KEY = "project"


def ensure_ready() -> None:
    """Once per session: make sure the store exists and the demo project is loaded."""
    if st.session_state.get("_ready"):
        return
    from engine.services.projects import ensure_demo_project, list_projects

    demo = ensure_demo_project()
    if PROJECT_KEY not in st.session_state:
        names = [p.name for p in list_projects()]
        st.session_state[PROJECT_KEY] = demo if demo in names else (names[0] if names else None)
    st.session_state["_ready"] = True


def current_project() -> str | None:
    return st.session_state.get(PROJECT_KEY)


def set_current_project(name: str) -> None:
    st.session_state[PROJECT_KEY] = name


def require_project() -> str:
    """The selected project, or an info box and a stop when there is none."""
    name = current_project()
    if not name:
        st.info("No project selected. Create or select one on the **Projects** page.")
        st.stop()
    return name
