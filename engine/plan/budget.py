"""Token budgets and model sizes as users write them: ``300B``, ``2.5T``, ``3e11``, ``25e9``, ``1B``."""

from __future__ import annotations

import math
import re

from engine.errors import InputError

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*$")


def parse_count(text: str | float | int, *, what: str = "budget", flag: str = "--budget") -> float:
    """A positive count of tokens or parameters from ``300B``/``2.5T``/``3e11``/``25e9``/``1.5M``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _PATTERN.match(str(text))
        if match is None:
            raise InputError(
                f"{flag} '{text}' is not a {what}.",
                hint=f"write a number with an optional K/M/B/T suffix, e.g. 300B, 2.5T, 3e11 ({flag}).",
            )
        value = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{flag} '{text}' must be a positive finite {what}.", hint=f"e.g. {flag} 300B.")
    return value


def format_count(value: float) -> str:
    """Short human form: 2.5e11 -> '250B', 1.2e12 -> '1.2T'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"
