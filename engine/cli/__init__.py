"""``mixplan`` command line: one module per area registers its commands on ``app``."""

from __future__ import annotations

import logging

from engine.cli._app import app
from engine.cli import data as _data  # noqa: F401  ingest, projects, runs, domains, db
from engine.cli import dashboard as _dashboard  # noqa: F401  dashboard, demo
from engine.cli import fit as _fit  # noqa: F401  fit, predict
from engine.cli import plan as _plan  # noqa: F401  plan, sweep-budgets, suggest
from engine.cli import train as _train  # noqa: F401  prepare-data, train, sweep, demo-corpus, jobs
from engine.cli import next_runs as _next_runs  # noqa: F401  train-pending (suggest and runs --pending delegate here)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
