"""Cached reads for the pages.

Results are keyed on the database URL and the project, so two databases (or two
tests in one process) never share entries. Pages that change data call
:func:`forget_cached_data`; the short ttl covers writes made elsewhere (the CLI,
another browser tab).
"""

from __future__ import annotations

import streamlit as st

from dataclasses import dataclass

from engine.config import Settings
from engine.services.defaults import ProjectDefaults, project_defaults
from engine.services.projects import project_dataset
from engine.services.runs import (CurveTable, RunSummary, TargetInfo, learning_curves, list_domains, list_runs,
                                  list_targets)
from engine.store.dataset import Dataset

TTL_SECONDS = 30
HASH_TTL_SECONDS = 5  # how long a write made elsewhere (CLI, another tab, a training) may go unseen


@dataclass(frozen=True)
class DomainTable:
    """The project's domains and targets as the Plan page's fields show them."""

    domains: list[str]
    unique_tokens: list[float]
    tags: list[dict]
    targets: list[str]


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


@st.cache_data(ttl=HASH_TTL_SECONDS, show_spinner=False, max_entries=8)
def current_dataset(project: str, url: str) -> Dataset:
    """The project's runs as they are now (read again after HASH_TTL_SECONDS): the data hash comes from
    them, and a page that needs the runs too reads them once (the Fit page's first opening read them twice
    for the hash and the views: 0.5 s on 512 runs x 110 targets)."""
    return project_dataset(project, url=url)


def cached_data_hash(project: str, url: str) -> str:
    """Hash of the project's runs: a job key and a stored result carry it, so a change marks results stale."""
    return current_dataset(project, url).data_hash


@st.cache_data(max_entries=64, show_spinner=False)
def cached_defaults(project: str, url: str, data_hash: str, max_epochs: float) -> ProjectDefaults:
    return project_defaults(project, max_epochs=max_epochs, url=url)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_domain_table(project: str, url: str, data_hash: str) -> DomainTable:
    domains = list_domains(project, url=url)
    return DomainTable([d.name for d in domains],
                       [float("nan") if d.unique_tokens is None else float(d.unique_tokens) for d in domains],
                       [d.tags for d in domains], [t.name for t in list_targets(project, url=url)])


@st.cache_data(max_entries=64, show_spinner=False)
def cached_law_change(project: str, url: str, data_hash: str, objective: str, _dataset: Dataset | None = None) -> str | None:
    """Why the default law changed with the data (the Fit and Plan pages both say it). ``_dataset``: the
    project's runs at ``data_hash`` if the page has them (not part of the cache key: the hash is)."""
    from engine.services.tasks import law_change

    return law_change(project, objective, url=url, dataset=_dataset)


def forget_cached_data() -> None:
    """After an import, a delete or an edit: every page reads the store again."""
    _runs.clear()
    _curves.clear()
    _targets.clear()
    current_dataset.clear()
