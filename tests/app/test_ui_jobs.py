"""The job poller on the pages (app.ui.jobs.job_status): it never reruns the page's own run."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.services.jobs import record_result
from engine.services.projects import create_project


def page_with_a_poller_and_a_form(job_id: int, url: str) -> None:
    import streamlit as st

    from app.ui.jobs import job_status

    job_status(job_id, url, key="t")  # drawn by the page's run: the job has already ended
    with st.form("f"):
        asked = st.form_submit_button("Go")
    if asked:
        st.session_state["asked"] = st.session_state.get("asked", 0) + 1
    st.session_state["runs"] = st.session_state.get("runs", 0) + 1


def test_a_job_that_ended_before_its_poller_was_drawn_does_not_rerun_the_page(sqlite_url):
    # A page reads a job as live, the job ends, then the page draws its poller: an st.rerun() there
    # interrupted the run before the form below was read, and the click that run carried was lost
    # (the journey's "Suggest runs" click). The fragment's next poll reruns the page instead.
    create_project("p", url=sqlite_url)
    job_id = record_result("p", "plan", "k", {}, {}, url=sqlite_url)
    at = AppTest.from_function(page_with_a_poller_and_a_form, args=(job_id, sqlite_url), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["runs"] == 1  # one run: the poller did not restart it
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["asked"] == 1  # the click reached the form
