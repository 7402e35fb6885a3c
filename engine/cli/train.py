"""Commands: (filled in by the train area)."""

from engine.cli._app import app  # noqa: F401
