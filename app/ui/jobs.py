"""Jobs on the pages: the server's runner, the loaded laws it shares with the pages, and the pollers.

A page never waits on work: it submits a job (or joins the live one with the same
key), renders the newest stored result at once, and a fragment polls the job row
every second and reruns the page when the job ends. Never call ``st.*`` from the
work itself: it runs in the runner's threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import streamlit as st

from engine.services.jobs import JobInfo, JobRunner, get_job, list_jobs, request_cancel
from engine.services.plans import PlanningInputs, planning_inputs

POLL_SECONDS = 1.0
# Jobs of a few seconds (a plan, suggestions, loading the laws) are polled four times as often: the next poll
# came half a second on average after the job ended, of the 4.2 s (p50) from a new budget to its plan on RegMix.
QUICK_POLL_SECONDS = 0.25
QUICK_KINDS = ("plan", "suggest", "load-laws")
KIND_LABELS = {"fit": "Fit", "plan": "Plan", "budget-sweep": "Budget sweep", "suggest": "Suggest next runs",
               "load-laws": "Load the laws", "train": "Training run", "sweep": "Training sweep"}


@st.cache_resource(show_spinner=False)
def runner() -> JobRunner:
    """One job runner per server process (two workers: this machine's cores; trainings run as processes)."""
    return JobRunner(max_workers=2)


class LoadedLaws:
    """The planning inputs (fitted laws wrapped for budgets) the job threads load and the what-if reuses.

    Keyed on (database, project, data hash, objective, model size, repetition form); the newest few are kept.
    """

    def __init__(self, size: int = 4):
        self._items: OrderedDict[tuple, PlanningInputs] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}
        self._size = size

    def get(self, key: tuple) -> PlanningInputs | None:
        with self._lock:
            return self._items.get(key)

    def load(self, key: tuple, url: str) -> PlanningInputs:
        """Load once even when two jobs ask at the same time."""
        with self._lock:
            if key in self._items:
                return self._items[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            found = self.get(key)
            if found is not None:
                return found
            _, project, _, objective, params, form = key
            inputs = planning_inputs(project, objective=objective, model_params=params, repetition_form=form, url=url)
            with self._lock:
                self._items[key] = inputs
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
                self._loading.pop(key, None)
            return inputs


@st.cache_resource(show_spinner=False)
def loaded_laws() -> LoadedLaws:
    return LoadedLaws()


def laws_key(url: str, project: str, data_hash: str, objective: str, params: float | None, form: str) -> tuple:
    return (url, project, data_hash, objective, params, form)


def loader(url: str, data_hash: str) -> Callable:
    """The inputs loader the job work calls (in the runner's threads): through the shared cache."""
    cache = loaded_laws()

    def load(project: str, objective: str, params: float | None, form: str) -> PlanningInputs:
        return cache.load(laws_key(url, project, data_hash, objective, params, form), url)

    return load


def label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def job_status(job_id: int, url: str, *, key: str) -> None:
    """Progress of one job, polled each second (QUICK_POLL_SECONDS for QUICK_KINDS); the page reruns when it
    ends; a Cancel button.

    The first call is the page's own run drawing the fragment; the later ones are the fragment's polls. Only a
    poll reruns the page: an st.rerun() in the page's own run would interrupt it before the widgets below were
    read, and a click that run carried (a form's submit button) would be lost for good.
    """
    first = get_job(job_id, url=url)
    quick = first is not None and first.kind in QUICK_KINDS
    page_run = [True]

    @st.fragment(run_every=QUICK_POLL_SECONDS if quick else POLL_SECONDS)
    def poll() -> None:
        drawn_by_page, page_run[0] = page_run[0], False
        job = get_job(job_id, url=url)
        if job is None:
            return
        if not job.live:
            if drawn_by_page:  # it ended a moment after the page read it: the next poll (in a moment) reruns
                return
            st.rerun()
        text = f"{label(job.kind)} (job {job.id}): {job.message or job.state}"
        cols = st.columns([5, 1])
        cols[0].progress(min(max(job.progress, 0.0), 1.0), text=text)
        if cols[1].button("Cancel", key=f"{key}_cancel_{job.id}", disabled=job.cancel_requested):
            request_cancel(job.id, url=url)

    poll()


def show_failure(job: JobInfo | None, *, what: str) -> bool:
    """When the newest job for these settings failed or was cancelled, say so; True when shown."""
    if job is None or job.state not in ("failed", "cancelled"):
        return False
    if job.state == "cancelled":
        st.warning(f"{what} was cancelled (job {job.id}).", icon=":material/cancel:")
    else:
        from app.ui.errors import page_words

        st.error(f"{what} failed (job {job.id}): {page_words(job.error or 'unknown error')}", icon=":material/error:")
    return True


def retry_wanted(job: JobInfo | None, *, key: str) -> bool:
    """For a failed or cancelled job: a button to ask again."""
    return job is not None and not job.live and st.button("Try again", key=f"{key}_retry_{job.id}")


def sidebar_jobs(project: str | None, url: str) -> None:
    """Live jobs of the project in the sidebar of every page, as of this run of the page.

    Not a polling fragment: a background rerun every few seconds re-sent stale widget values
    (the Projects page's selection flipped back); the pages with work in flight poll their own job.
    """
    if not project:
        return
    live = list_jobs(project, live_only=True, limit=10, url=url)
    with st.sidebar:
        if not live:
            st.caption("No jobs running.")
            return
        st.caption(f"{len(live)} job(s) running")
        for job in live:
            st.progress(min(max(job.progress, 0.0), 1.0), text=f"{label(job.kind)}: {job.message or job.state}")


def executor_choice(key: str) -> str:
    """Where trainings run: ``local`` or, with the Ray extra installed, ``ray``. The cluster address is
    server configuration (RAY_ADDRESS), never a page field: a page must not point the server at a host."""
    from engine.train.ray_executor import ray_available

    executors = ["local"] + (["ray"] if ray_available() else [])
    return st.radio("Run on", executors, horizontal=True, key=key,
                    help="local: worker processes on this server. ray: one Ray task a run, on the cluster "
                         "the server's RAY_ADDRESS names (a local Ray when unset); the address is server "
                         "configuration, not a page field. Needs `pip install 'mixplan[ray]'`.")
