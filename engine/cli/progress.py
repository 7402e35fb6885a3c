"""A progress bar on stderr for engine progress events (long plans and sweeps).

tqdm with ``disable=None`` draws only when stderr is a terminal, so piped output
and ``--json`` documents stay clean.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from tqdm import tqdm

from engine.progress import ProgressCallback, ProgressEvent

STEPS = 1000  # bar resolution: events arrive as fractions of the whole task


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressCallback]:
    """A callback that moves a bar on stderr to each event's fraction, closed when the block ends."""
    with tqdm(total=STEPS, desc=description, file=sys.stderr, disable=None, leave=False,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}") as bar:

        def update(event: ProgressEvent) -> None:
            bar.set_postfix_str(f"{event.stage}: {event.message}" if event.message else event.stage, refresh=False)
            bar.update(max(0, round(event.fraction * STEPS) - bar.n))

        yield update
