"""User text inside Markdown: project names, descriptions, file names, column names, cell values, errors.

Streamlit renders Markdown (links, images, HTML-like tags) in st.info, st.caption,
st.error and friends. A name like ``![x](http://host/t.png)`` in an uploaded file
would make every viewer's browser fetch that address; escaped, it shows as typed.
"""

from __future__ import annotations

import re

# What makes Markdown act: links and images ([ ] !), HTML (< >), emphasis and code (* _ `), tables (|),
# strikethrough (~), LaTeX ($), Streamlit's :icon: and :color[...] shortcodes (:), and the escape itself.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>!|~$:])")


def plain(value: object) -> str:
    """``value`` as literal text inside a Markdown string (its active characters backslash-escaped)."""
    return _MARKDOWN.sub(r"\\\1", str(value))
