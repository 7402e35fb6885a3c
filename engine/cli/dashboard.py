"""Command: dashboard (filled in by the shell area)."""

from engine.cli._app import app  # noqa: F401
