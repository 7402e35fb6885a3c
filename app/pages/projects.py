"""Projects: list with counts, select, create, delete (with confirmation)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.ui.cache import forget_cached_data
from app.ui.state import current_project, flash, set_current_project, show_flash
from app.ui.text import plain
from engine.errors import MixplanError
from engine.services.demo import DEMO_PROJECT, load_demo_project
from engine.services.projects import create_project, delete_project, list_projects


def _create() -> None:
    name = st.session_state.get("new_project_name", "")
    description = st.session_state.get("new_project_description", "")
    try:
        created = create_project(name, description)
    except MixplanError as error:
        flash("error", str(error))
        return
    set_current_project(created)
    st.session_state["new_project_name"] = ""
    st.session_state["new_project_description"] = ""
    flash("success", f"Created project '{created}' and selected it. Next: add logs on the **Upload** page.")


def _load_demo() -> None:
    try:
        name = load_demo_project()
    except MixplanError as error:
        flash("error", str(error))
        return
    forget_cached_data()
    set_current_project(name)
    flash("success", f"Loaded the demo project '{name}' and selected it.")


def _delete(name: str) -> None:
    try:
        delete_project(name)
    except MixplanError as error:
        flash("error", str(error))
        return
    forget_cached_data()
    if current_project() == name:
        remaining = [p.name for p in list_projects()]
        set_current_project(remaining[0] if remaining else None)
    st.session_state["delete_confirm"] = ""
    flash("success", f"Deleted project '{name}' with its runs, fits and plans.")


st.title("Projects")
show_flash()
projects = list_projects()

if projects:
    names = [p.name for p in projects]
    if current_project() not in names:
        set_current_project(names[0])
    # The widget follows the shared selection (which a create or delete may have just changed).
    st.session_state["project_select"] = current_project()
    choice = st.selectbox("Current project", names, key="project_select",
                          on_change=lambda: set_current_project(st.session_state["project_select"]),
                          help="The Upload, Runs, Fit, Plan and Train pages work on this project.")
    summary = next(p for p in projects if p.name == choice)
    if summary.is_demo:
        st.info(f"**Demo project.** {plain(summary.description)}", icon=":material/science:")
    elif summary.description:
        st.caption(plain(summary.description))
    cols = st.columns(3)
    cols[0].metric("Runs", summary.runs)
    cols[1].metric("Domains", summary.domains)
    cols[2].metric("Evaluation targets", summary.targets)

    st.subheader("All projects")
    table = pd.DataFrame(
        {
            "project": [p.name for p in projects],
            "runs": [p.runs for p in projects],
            "domains": [p.domains for p in projects],
            "targets": [p.targets for p in projects],
            "demo": [p.is_demo for p in projects],
            "description": [p.description for p in projects],
            "created": [p.created_at for p in projects],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
else:
    st.info("There are no projects yet. Create one below, then add logs on the **Upload** page.")

with st.form("create_project", clear_on_submit=False):
    st.subheader("New project")
    st.text_input("Name", key="new_project_name", placeholder="e.g. pile-1m")
    st.text_area("Description (optional)", key="new_project_description",
                 placeholder="What these runs are: model size, corpus, who trained them...")
    st.form_submit_button("Create project", on_click=_create)

if projects:
    with st.expander("Delete a project"):
        doomed = st.selectbox("Project to delete", [p.name for p in projects], key="delete_choice")
        typed = st.text_input(f"Type '{doomed}' to confirm", key="delete_confirm")
        st.button("Delete project", type="primary", disabled=typed.strip() != doomed,
                  on_click=_delete, args=(doomed,), key="delete_button")

if DEMO_PROJECT not in {p.name for p in projects}:
    st.button("Add the demo project", key="load_demo", on_click=_load_demo,
              help="Loads the example logs under examples/ as the project 'demo'.")
