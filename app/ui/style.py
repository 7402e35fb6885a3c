"""One look across the pages: option colours, a domain palette that stays distinct at 64 domains,
and numbers written for people (25B tokens, 0.137)."""

from __future__ import annotations

import colorsys
import math
import re
from collections.abc import Sequence

import altair as alt

from engine.counts import format_count

# The same option has the same colour on every chart of every page.
OPTION_COLORS = {"plan": "#d62728", "uniform": "#7f7f7f", "natural": "#1f77b4", "unimax": "#2ca02c",
                 "best observed run": "#ff7f0e", "edited": "#9467bd"}
TABLEAU20 = ["#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d", "#59a14f", "#8cd17d", "#b6992d", "#f1ce63", "#499894",
             "#86bcb6", "#e15759", "#ff9d9a", "#79706e", "#bab0ac", "#d37295", "#fabfd2", "#b07aa1", "#d4a6c8",
             "#9d7660", "#d7b5a6"]


def palette(n: int) -> list[str]:
    """``n`` distinct colours: Tableau 20 up to 20, else hues spread evenly at three lightness levels."""
    if n <= len(TABLEAU20):
        return TABLEAU20[:max(n, 1)]
    colours = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0  # golden-ratio steps: neighbours in the list differ most
        lightness = (0.38, 0.55, 0.70)[i % 3]
        r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.65)
        colours.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return colours


def domain_scale(domains: Sequence[str]) -> alt.Scale:
    """A colour per domain (the order given), 'other' grey."""
    names = list(domains)
    colours = palette(len(names))
    return alt.Scale(domain=names, range=["#bbbbbb" if d == "other" else colours[i] for i, d in enumerate(names)])


def option_scale(options: Sequence[str]) -> alt.Scale:
    names = list(options)
    fallback = palette(len(names))
    return alt.Scale(domain=names, range=[OPTION_COLORS.get(o, fallback[i]) for i, o in enumerate(names)])


def tokens(value: float | None) -> str:
    """2.5e10 -> '25B'; None/NaN -> 'unknown'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "unknown"
    return format_count(float(value))


def number(value: float | None, digits: int = 3) -> str:
    """A measured or predicted value with ``digits`` significant digits: 0.13700000001 -> '0.137'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1e5 else format_count(value)


def share(value: float) -> str:
    """A share as a percentage with enough digits to see small ones: 0.0012 -> '0.12%'."""
    pct = 100.0 * value
    return f"{pct:.1f}%" if abs(pct) >= 1 or pct == 0 else f"{pct:.2g}%"


OVERFLOW = re.compile(r"^\.\.\. and (\d+) more .*notes?$")  # how ingest summarises notes past its listing limit


def note_count(notes: list[str]) -> int:
    """Notes in an import report, counting those summarised as '... and N more X notes' (303, not 21)."""
    return sum(int(m.group(1)) if (m := OVERFLOW.match(n)) else 1 for n in notes)


def notes_markdown(notes: Sequence[str]) -> str:
    """A Markdown list of notes for one box, a line each, their text escaped (a note can quote a domain's
    name, which came from an upload)."""
    from app.ui.text import plain

    return "\n".join(f"- {plain(note)}" for note in notes)


def difference(value: float, unit: str = "") -> str | None:
    """A metric delta for people: '+0.012' or None (no arrow) when it rounds to nothing at 4 decimals."""
    if not math.isfinite(value) or abs(value) < 5e-5:
        return None
    return f"{value:+.2g}{unit}"
