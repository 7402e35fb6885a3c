"""Progress events from long engine work (fits, plans, sweeps, trainings).

The engine reports; it never draws. The CLI turns events into a tqdm bar, the
dashboard's job runner stores the latest event on the job row. A long function
takes ``progress: ProgressCallback | None = None`` and calls :func:`report`.

A callback may raise :class:`Cancelled` to stop the work at the next event; the
engine lets it propagate and leaves nothing half-written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long task: ``done`` of ``total`` units of ``stage``."""

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, max(0.0, self.done / self.total))


ProgressCallback = Callable[[ProgressEvent], None]


class Cancelled(Exception):
    """Raised by a progress callback to stop the work it reports on."""


def report(progress: Optional[ProgressCallback], stage: str, done: int, total: int,
           message: str = "") -> None:
    """Send one event to ``progress`` when there is a callback; a no-op otherwise."""
    if progress is not None:
        progress(ProgressEvent(stage, int(done), int(total), message))


def scaled(progress: Optional[ProgressCallback], start: float, stop: float,
           total: int = 1000) -> Optional[ProgressCallback]:
    """A callback that maps a sub-task's fraction into ``[start, stop]`` of a parent's."""
    if progress is None:
        return None

    def forward(event: ProgressEvent) -> None:
        share = start + (stop - start) * event.fraction
        progress(ProgressEvent(event.stage, round(share * total), total, event.message))

    return forward
