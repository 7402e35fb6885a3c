"""The Typer application every command module registers on."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import typer

from engine.errors import MixplanError

app = typer.Typer(
    name="mixplan",
    help="Plan the data mixture of a pretraining run under a compute budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout and nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def fail(error: Exception, code: int = 2) -> None:
    """One line on stderr a user can act on, and a non-zero exit."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a MixplanError becomes a one-line message and exit code 2."""
    try:
        return fn()
    except MixplanError as exc:
        fail(exc)
