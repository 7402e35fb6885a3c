"""The demo project: loaded from the logs under ``examples/`` on the first start.

``examples/demo/`` holds real proxy-training logs (made by mixplan's trainer) when
they exist; otherwise ``examples/synthetic/`` (made by
``scripts/make_synthetic_demo.py`` from a stated law) is used. Each folder's
``ABOUT.md`` says how its logs were made; its first paragraph becomes the
project's description, so the dashboard says plainly whether runs are real.

Loading also fits the laws and plans at the project's default budget, stored as a
finished plan job under the key the Plan page asks for: a newcomer opens Plan on
a recommended mixture, not on a spinner.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from engine.config import EXAMPLES_DIR
from engine.errors import InputError, MixplanError
from engine.store import Project, session_scope
from engine.store.queries import find_project, project_or_none

log = logging.getLogger(__name__)

DEMO_PROJECT = "demo"
DEMO_FOLDERS = ("demo", "synthetic")  # first one present wins: real logs before synthetic ones
LOG_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".yaml", ".yml")
_LOCK = threading.Lock()  # Streamlit sessions share a process: load the demo once


@dataclass(frozen=True)
class DemoSource:
    """Where the demo's logs come from and how they are described."""

    folder: Path
    files: list[Path]
    description: str


def describe_folder(folder: Path) -> str:
    """First paragraph of the folder's ABOUT.md (Markdown heading skipped), or a plain fallback."""
    about = folder / "ABOUT.md"
    if about.is_file():
        paragraph: list[str] = []
        for line in about.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text.startswith("#"):
                continue
            if not text:
                if paragraph:
                    break
                continue
            paragraph.append(text)
        if paragraph:
            return " ".join(paragraph)
    return f"Logs loaded from {folder}."


def find_demo_source(examples_dir: Path | None = None) -> DemoSource | None:
    """The first folder of DEMO_FOLDERS under ``examples_dir`` (default: examples/) that holds log files."""
    examples_dir = examples_dir or EXAMPLES_DIR
    for name in DEMO_FOLDERS:
        folder = examples_dir / name
        files = sorted(p for p in folder.glob("*") if p.is_file() and p.suffix.lower() in LOG_SUFFIXES)
        if files:
            return DemoSource(folder=folder, files=files, description=describe_folder(folder))
    return None


def load_demo_project(*, url: str | None = None, reset: bool = False, examples_dir: Path | None = None) -> str:
    """Create the demo project from the example logs; with ``reset`` an existing one is replaced.

    Raises InputError when there are no example logs, and whatever ingest raises on
    them; a failed load leaves no demo project behind.
    """
    from engine.services.ingest import ingest_files
    from engine.services.projects import create_project, delete_project

    source = find_demo_source(examples_dir)
    if source is None:
        raise InputError(
            f"no demo logs under {examples_dir or EXAMPLES_DIR} (looked in {', '.join(DEMO_FOLDERS)}).",
            hint="run `python scripts/make_synthetic_demo.py` in a source checkout.",
        )
    with session_scope(url) as s:
        exists = project_or_none(s, DEMO_PROJECT) is not None
    if exists and not reset:
        return DEMO_PROJECT
    if exists:
        delete_project(DEMO_PROJECT, url=url)
    create_project(DEMO_PROJECT, source.description, url=url)
    try:
        report = ingest_files(DEMO_PROJECT, source.files, url=url, create=False)
    except BaseException:
        delete_project(DEMO_PROJECT, url=url)  # next start tries again instead of showing an empty demo
        raise
    with session_scope(url) as s:
        project = find_project(s, DEMO_PROJECT)
        project.description = source.description
        project.is_demo = True
    log.info("demo project loaded from %s: %s", source.folder, report.summary())
    try:
        plan_demo(url=url)
    except MixplanError:  # the demo still opens; its Plan page computes the plan as a job instead
        log.exception("could not plan the demo project")
    return DEMO_PROJECT


def plan_demo(*, url: str | None = None) -> int:
    """Fit the demo's laws and store its plan at the default settings as a finished job; returns the job id."""
    from engine.plan.constraints import Constraints
    from engine.services.defaults import project_defaults
    from engine.services.jobs import job_key, record_result
    from engine.services.plans import make_project_plan
    from engine.services.projects import project_data_hash
    from engine.services.tasks import plan_settings

    defaults = project_defaults(DEMO_PROJECT, url=url)
    settings = plan_settings(defaults.objective, defaults.budget_tokens, Constraints(max_epochs=defaults.max_epochs))
    plan = make_project_plan(DEMO_PROJECT, defaults.budget_tokens, Constraints(max_epochs=defaults.max_epochs),
                             objective=defaults.objective, url=url)
    key = job_key("plan", DEMO_PROJECT, settings, project_data_hash(DEMO_PROJECT, url=url))
    return record_result(DEMO_PROJECT, "plan", key, settings, plan.to_dict(), url=url)


def ensure_demo_project(url: str | None = None, *, examples_dir: Path | None = None) -> str | None:
    """On the first start (an empty database) load the demo project; later starts cost one query.

    Returns "demo" when the demo project exists (or was just loaded), None when the
    database already held other projects (the user deleted the demo: respect that)
    or the example logs could not be loaded (logged, so the dashboard still opens).
    """
    with _LOCK:
        with session_scope(url) as s:
            names = set(s.scalars(select(Project.name)))
        if DEMO_PROJECT in names:
            return DEMO_PROJECT
        if names:
            return None
        try:
            return load_demo_project(url=url, examples_dir=examples_dir)
        except MixplanError:
            log.exception("could not load the demo project")
            return None
