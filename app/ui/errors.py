"""How the pages show errors: a MixplanError is a message for the user, not a traceback."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from app.ui.text import plain
from engine.errors import InputError, MixplanError


def show_error(error: MixplanError, *, nothing_changed: bool = False) -> None:
    """Show ``error`` in an error box; ``nothing_changed`` tells the user the store is as before."""
    prefix = "Rejected, nothing was imported. " if nothing_changed and isinstance(error, InputError) else ""
    st.error(prefix + plain(error), icon=":material/error:")  # errors quote file names, columns and cells


@contextmanager
def stop_on_error() -> Iterator[None]:
    """Run a block; a MixplanError inside it is shown and the page stops there."""
    try:
        yield
    except MixplanError as error:
        show_error(error)
        st.stop()
