"""Cached reads for the pages.

Results are keyed on the database URL and the project, so two databases (or two
tests in one process) never share entries. Pages that change data call
:func:`forget_cached_data`; the short ttl covers writes made elsewhere (the CLI,
another browser tab).
"""

from __future__ import annotations

import streamlit as st

from engine.config import Settings
from engine.services.runs import CurveTable, RunSummary, TargetInfo, learning_curves, list_runs, list_targets

TTL_SECONDS = 30


def database_url() -> str:
    return Settings.from_env().database_url


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _runs(project: str, url: str) -> list[RunSummary]:
    return list_runs(project, url=url)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _curves(project: str, url: str) -> CurveTable:
    return learning_curves(project, url=url)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _targets(project: str, url: str) -> list[TargetInfo]:
    return list_targets(project, url=url)


def cached_targets(project: str) -> list[TargetInfo]:
    return _targets(project, database_url())


def cached_runs(project: str) -> list[RunSummary]:
    return _runs(project, database_url())


def cached_curves(project: str) -> CurveTable:
    return _curves(project, database_url())


def forget_cached_data() -> None:
    """After an import, a delete or an edit: every page reads the store again."""
    _runs.clear()
    _curves.clear()
    _targets.clear()
