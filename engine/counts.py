"""Counts and shares as users write them, parsed and printed by one set of rules.

Counts of tokens or parameters: ``300B``, ``2.5T``, ``3e11``, ``1e+9``, ``25e9``, ``1.5M``, ``120000000``
(suffixes K, M, B or G, T; any case). The CLI's ``--budget``/``--params``/``--tokens``/``--budgets``,
the trainer, ingest's token and parameter cells, ``domains set --unique-tokens`` and the
dashboard's form fields all read them with :func:`parse_count` and print them with :func:`format_count`.

``NAME=SHARE`` lists (``--min code=0.05``, ``--mixture code=0.4,prose=0.6``) are read by :func:`parse_shares`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Protocol

from engine.errors import InputError

_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*$")
_MULTIPLIER = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
MAX_COUNT = 2**63 - 1024  # counts are stored as 64-bit integers
COUNT_EXAMPLES = "300B, 2.5T, 3e11 or 120M"


class Locator(Protocol):
    """Where a value came from (a file cell): builds the error that names it."""

    def error(self, message: str, hint: str | None = None) -> InputError: ...


class _Flag:
    """A CLI flag or form field as the place a value came from."""

    def __init__(self, flag: str | None) -> None:
        self.flag = flag

    def error(self, message: str, hint: str | None = None) -> InputError:
        return InputError(f"{self.flag} {message}" if self.flag else message, hint=hint)


def parse_count(text: Any, *, what: str = "a token count", flag: str | None = None, where: Locator | None = None,
                allow_zero: bool = False) -> float:
    """A finite count > 0 (>= 0 with ``allow_zero``) from a number or text such as ``300B`` or ``1e+9``.

    A bad value raises an InputError naming ``where`` (file, line, column) or ``flag``.
    """
    place = where if where is not None else _Flag(flag)
    example = f"write a number with an optional K/M/B/T suffix, e.g. {COUNT_EXAMPLES}"
    if isinstance(text, bool) or text is None:
        raise place.error(f"'{text}' is not {what}.", example + ".")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _PATTERN.match(str(text))
        if match is None:
            raise place.error(f"'{text}' is not {what}.", example + ".")
        value = float(match.group(1)) * _MULTIPLIER[match.group(2).lower()]
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise place.error(f"'{text}' is not {what} (a finite number {bound}).", example + ".")
    if value >= MAX_COUNT:
        raise place.error(f"'{text}' is too large for {what} (the limit is about 9.2e18).", "check the units of this value.")
    return value


def parse_whole_count(text: Any, *, what: str = "a token count", flag: str | None = None,
                      where: Locator | None = None, allow_zero: bool = False) -> int:
    """:func:`parse_count` rounded to a whole number (tokens, parameters, seeds stored as integers)."""
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 19:
        return int(text)  # the common case in large logs, without the regex
    return int(round(parse_count(text, what=what, flag=flag, where=where, allow_zero=allow_zero)))


def parse_counts(text: str, *, what: str = "a token count", flag: str | None = None) -> list[int]:
    """``'250k,1M'`` -> sorted distinct whole counts."""
    counts = [parse_whole_count(part, what=what, flag=flag) for part in str(text).split(",") if part.strip()]
    if not counts:
        raise InputError(f"{flag or 'the list'} has no values.", hint="write a comma list such as 250k,1M.")
    return sorted(set(counts))


def format_count(value: float | int | None) -> str:
    """Short human form: 2.5e11 -> '250B', 1.2e12 -> '1.2T', 120000000 -> '120M'; None or NaN -> '-'."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def parse_shares(items: str | Iterable[str] | None, *, flag: str = "--mixture") -> dict[str, float]:
    """``["code=0.05", ...]`` or ``"code=0.4,web=0.6"`` -> ``{"code": 0.05, ...}``: shares in [0, 1], each name once."""
    if items is None:
        return {}
    parts = [p for item in ([items] if isinstance(items, str) else items) for p in str(item).split(",")]
    hint = f"write NAME=SHARE with a share between 0 and 1, e.g. {flag} code=0.05"
    shares: dict[str, float] = {}
    for part in parts:
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"{flag} '{part.strip()}' is not NAME=SHARE.", hint=hint)
        try:
            share = float(value)
        except ValueError:
            raise InputError(f"{flag} '{part.strip()}': '{value.strip()}' is not a number.", hint=hint) from None
        if not 0.0 <= share <= 1.0:  # NaN fails this too
            raise InputError(f"{flag} '{part.strip()}': a share must be between 0 and 1.", hint=hint)
        if name in shares:
            raise InputError(f"{flag} names '{name}' twice.", hint="give each domain once.")
        shares[name] = share
    return shares
