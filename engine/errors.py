"""One exception tree for everything mixplan reports to a user.

Every message says what failed, where (file, row, column, domain, target) and
what to do about it. The CLI prints ``str(error)`` on one line to stderr; the
dashboard shows it in ``st.error``.
"""

from __future__ import annotations


class MixplanError(Exception):
    """Base of every error mixplan raises on purpose."""


class InputError(MixplanError):
    """A file, form field or CLI argument that mixplan cannot accept.

    ``file``, ``row`` (1-based line number as an editor shows it) and
    ``column`` locate the problem where one exists; ``hint`` says how to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"{self.file}")
        if self.row is not None:
            where.append(f"line {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.hint:
            text += f" Fix: {self.hint}"
        return text


class FitError(MixplanError):
    """A law could not be fitted (which law, which target, why)."""


class PlanError(MixplanError):
    """No plan can be made (e.g. constraints that conflict)."""


class StoreError(MixplanError):
    """The database is unreachable, at a newer schema, or inconsistent."""


class BusyError(StoreError):
    """Another writer kept the database locked through every retry; nothing was changed."""


class TrainError(MixplanError):
    """A proxy training could not run or was interrupted."""
