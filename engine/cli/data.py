"""Commands: (filled in by the data area)."""

from engine.cli._app import app  # noqa: F401
