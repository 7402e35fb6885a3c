"""Entry file: page config and routes only (st.navigation)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/streamlit_app.py` from a source checkout
    sys.path.insert(0, str(ROOT))

from app.ui.cache import database_url  # noqa: E402
from app.ui.jobs import sidebar_jobs  # noqa: E402
from app.ui.state import current_project, ensure_ready  # noqa: E402

# A local icon: a ":material/...:" page icon makes the browser fetch the favicon from Google's servers.
st.set_page_config(page_title="mixplan", page_icon=str(Path(__file__).parent / "favicon.png"), layout="wide")
ensure_ready()

PAGES = Path(__file__).parent / "pages"
navigation = st.navigation(
    {
        "Data": [
            st.Page(PAGES / "projects.py", title="Projects", icon=":material/folder:", default=True),
            st.Page(PAGES / "upload.py", title="Upload", icon=":material/upload:"),
            st.Page(PAGES / "runs.py", title="Runs", icon=":material/table:"),
        ],
        "Model": [
            st.Page(PAGES / "fit.py", title="Fit", icon=":material/insights:"),
            st.Page(PAGES / "plan.py", title="Plan", icon=":material/tune:"),
            st.Page(PAGES / "next_runs.py", title="Next runs", icon=":material/science:"),
        ],
        "Train": [
            st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
        ],
    }
)
sidebar_jobs(current_project(), database_url())  # long work stays visible from every page
navigation.run()
