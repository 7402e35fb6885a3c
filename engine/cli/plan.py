"""Commands: (filled in by the plan area)."""

from engine.cli._app import app  # noqa: F401
