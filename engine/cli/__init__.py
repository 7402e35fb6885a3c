"""``mixplan`` command line: one module per area registers its commands on ``app``."""

from __future__ import annotations

import logging
import sys

from engine.cli._app import app
from engine.cli import data as _data  # noqa: F401  ingest, projects, runs, domains, db
from engine.cli import dashboard as _dashboard  # noqa: F401  dashboard, demo
from engine.cli import fit as _fit  # noqa: F401  fit, predict
from engine.cli import plan as _plan  # noqa: F401  plan, sweep-budgets, suggest
from engine.cli import train as _train  # noqa: F401  prepare-data, train, sweep, demo-corpus, jobs
from engine.cli import next_runs as _next_runs  # noqa: F401  train-pending (suggest and runs --pending delegate here)


def main(argv: list[str] | None = None) -> None:
    """The console script. No traceback reaches the terminal: expected errors (bad input, an unusable
    database) are one line and exit 2; anything else is a bug, logged to a file, one line and exit 1."""
    from sqlalchemy.exc import DBAPIError

    from engine.crash import crash_message
    from engine.errors import MixplanError
    from engine.store.session import store_error

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="mixplan")
    except MixplanError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except DBAPIError as exc:
        sys.stderr.write(f"error: {store_error(exc)}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted.\n")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001  the one place a bug becomes a message instead of a traceback
        command = next((a for a in args if not a.startswith("-")), "mixplan")
        sys.stderr.write(f"error: {crash_message(exc, f'mixplan {command}')}\n")
        sys.exit(1)
