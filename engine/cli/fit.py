"""Commands: (filled in by the fit area)."""

from engine.cli._app import app  # noqa: F401
