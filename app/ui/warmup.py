"""The engine's heavy imports, made in the background when the server serves its first session.

The Fit, Plan and Next runs pages import the laws (PyTorch, LightGBM, which imports scikit-learn, SciPy)
on their first opening: 0.7 of the 1.0 s that the first opening of Fit took on RegMix (py-spy), paid by the
first person to click there. A thread started once per server process imports them instead, seconds before
anyone can reach those pages; a page that gets there first simply waits on Python's import lock.
"""

from __future__ import annotations

import importlib
import logging
import threading

import streamlit as st

log = logging.getLogger(__name__)

HEAVY = ("engine.laws.registry", "engine.services.tasks", "engine.services.plans", "engine.services.next_runs",
         "app.ui.fit_charts", "app.ui.plan_charts")


def _import_all() -> None:
    for name in HEAVY:
        try:
            importlib.import_module(name)
        except Exception:  # the page importing it reports the same error to its user
            log.exception("warming up: importing %s failed", name)


@st.cache_resource(show_spinner=False)
def warm_imports() -> threading.Thread:
    """Start the imports once per server process (a daemon thread); returns the thread."""
    thread = threading.Thread(target=_import_all, name="mixplan-warm-imports", daemon=True)
    thread.start()
    return thread
