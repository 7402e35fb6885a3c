"""What a user sees when mixplan hits a bug: one short message; the traceback goes to a log file.

The CLI's entry point and the dashboard's entry file are the only callers: every
exception that is not a :class:`~engine.errors.MixplanError` (or a database
failure that :func:`engine.store.session.store_error` explains) ends here.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path

from engine.config import default_home


def crash_log_dir() -> Path:
    """``$MIXPLAN_HOME/logs``: next to the default database, where a user can find it."""
    return default_home() / "logs"


def write_crash_log(error: BaseException, action: str) -> Path:
    """The full traceback in a new file under :func:`crash_log_dir` (the temp folder if that is not writable)."""
    prefix = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-"
    text = f"mixplan: {action} failed\n\n" + "".join(traceback.format_exception(error))
    for folder in (crash_log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # A new file each time (two crashes in one second must not overwrite each other).
            with tempfile.NamedTemporaryFile("w", dir=folder, prefix=prefix, suffix=".log", delete=False,
                                             encoding="utf-8") as handle:
                handle.write(text)
            return Path(handle.name)
        except OSError:
            continue
    return Path("(not written: neither the log folder nor the temp folder is writable)")


def crash_message(error: BaseException, action: str) -> str:
    """Record ``error`` and return the short message for the user: what failed, that it is a bug, where to look."""
    path = write_crash_log(error, action)
    return (f"{action} failed with an unexpected {type(error).__name__}. This is a bug in mixplan, not in your input; "
            f"the full traceback was written to {path} (please attach it to a bug report).")
