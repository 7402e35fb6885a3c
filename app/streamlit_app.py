"""Entry file: page config, routes (st.navigation) and the app's one top-level error handler."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/streamlit_app.py` from a source checkout
    sys.path.insert(0, str(ROOT))

from app.ui.auth import require_sign_in  # noqa: E402
from app.ui.cache import database_url  # noqa: E402
from app.ui.jobs import sidebar_jobs  # noqa: E402
from app.ui.state import current_project, ensure_ready  # noqa: E402
from app.ui.warmup import warm_imports  # noqa: E402

# A local icon: a ":material/...:" page icon makes the browser fetch the favicon from Google's servers.
st.set_page_config(page_title="mixplan", page_icon=str(Path(__file__).parent / "favicon.png"), layout="wide")

PAGES = Path(__file__).parent / "pages"


def show_unexpected(error: Exception, where: str) -> None:
    """No traceback or server path in the browser: a store failure is explained, anything else is a bug
    whose traceback goes to a log file under MIXPLAN_HOME/logs (client.showErrorDetails is "none" too)."""
    from sqlalchemy.exc import DBAPIError

    from engine.crash import crash_message
    from engine.errors import MixplanError
    from engine.store.session import store_error

    if isinstance(error, MixplanError):
        st.error(str(error), icon=":material/error:")
    elif isinstance(error, DBAPIError):
        st.error(str(store_error(error)), icon=":material/error:")
    else:
        st.error(crash_message(error, where), icon=":material/error:")


page = "the dashboard"
try:  # st.stop() and st.rerun() raise BaseExceptions, which pass through
    require_sign_in()  # before any page is registered: a signed-out visitor reaches nothing else
    ensure_ready()
    warm_imports()  # the laws' imports in the background: the first opening of Fit or Plan does not wait on them
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
    page = f"the {navigation.title} page"
    sidebar_jobs(current_project(), database_url())  # long work stays visible from every page
    navigation.run()
except Exception as error:  # noqa: BLE001  the app's one top-level handler
    show_unexpected(error, page)
