"""Options every command shares, defined once: --db, --json, --project, --seed (default ``MIXPLAN_SEED``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from engine.config import Settings

DbOption = Annotated[Optional[str], typer.Option(
    "--db", help="Database URL (default: MIXPLAN_DATABASE_URL, else the SQLite file under MIXPLAN_HOME).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project name.")]
SeedOption = Annotated[Optional[int], typer.Option("--seed", help="Random seed (default: MIXPLAN_SEED, else 0).")]


def seed_or_default(seed: int | None) -> int:
    """The ``--seed`` given, else ``MIXPLAN_SEED`` (README: the default seed of fits, designs and trainings)."""
    return seed if seed is not None else Settings.from_env().seed
