"""How the pages show errors: a MixplanError is a message for the user, not a traceback.

Engine messages name CLI flags (``--max-epochs``); on a page the fix is a field,
so :func:`page_words` names the field the user can change instead.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from app.ui.text import plain
from engine.errors import InputError, MixplanError

# CLI flag -> the page field that sets the same thing.
PAGE_FIELDS = {
    "--max-epochs": "the 'Epoch cap per domain' field",
    "--budget": "the 'Token budget' field",
    "--params": "the 'Model size' field",
    "--objective": "the 'Objective' choice",
    "--min": "the 'min' column of 'Constraints per domain'",
    "--max": "the 'max' column of 'Constraints per domain'",
    "--fix": "the 'fixed' column of 'Constraints per domain'",
    "--exclude-tag": "the 'Exclude domains with tags' field",
    "--exclude": "the 'exclude' column of 'Constraints per domain'",
    "--law": "the law on the Fit page",
    "--n": "the 'How many runs' field",
}
_FLAG = re.compile(r"(?<![\w-])(" + "|".join(sorted(map(re.escape, PAGE_FIELDS), key=len, reverse=True)) + r")(?![\w-])")
_COMMAND = re.compile(r"\(?`?mixplan ingest`?\)?")


def page_words(message: str) -> str:
    """``message`` with CLI flags replaced by the page fields that set the same values."""
    text = _FLAG.sub(lambda m: PAGE_FIELDS[m.group(1)], message)
    text = re.sub(r"\braise (the '[^']+' field)", r"raise \1", text)
    return _COMMAND.sub("on the Upload page", text)


def show_error(error: MixplanError | str, *, nothing_changed: bool = False) -> None:
    """Show ``error`` in an error box; ``nothing_changed`` tells the user the store is as before."""
    prefix = "Rejected, nothing was imported. " if nothing_changed and isinstance(error, InputError) else ""
    st.error(prefix + plain(page_words(str(error))), icon=":material/error:")  # errors quote file names, columns and cells


@contextmanager
def stop_on_error() -> Iterator[None]:
    """Run a block; a MixplanError inside it is shown and the page stops there."""
    try:
        yield
    except MixplanError as error:
        show_error(error)
        st.stop()
