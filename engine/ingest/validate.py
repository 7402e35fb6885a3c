"""Checks on single values and mixtures; every failure is an InputError that says where and how to fix it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.counts import parse_whole_count
from engine.errors import InputError

# Shares may be off by this much (rounding in the logs); they are renormalised and the row is reported.
SUM_TOLERANCE = 0.01
# Sane ranges per role: beyond these a value is a unit mistake or garbage, and would overflow a fit.
MAX_SHARE = 1 + SUM_TOLERANCE
MAX_METRIC = 1e6  # losses are ~1-20 and perplexities rarely above 1e5
COUNT_LIMITS = {"a token count": 1e15, "a parameter count": 1e14, "a sequence length": 1e7}


@dataclass(frozen=True)
class Where:
    """A place in a file, for messages."""

    file: str | None
    line: int | None = None
    column: str | None = None

    def error(self, message: str, hint: str | None = None) -> InputError:
        return InputError(message, file=self.file, row=self.line, column=self.column, hint=hint)


def parse_optional_count(text: Any, where: Where, what: str = "a count") -> int | None:
    """A whole count >= 0 (``120000000``, ``1.2e8``, ``120M``) by the one count rule; empty means unknown."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        value = parse_whole_count(text, what=what, where=where, allow_zero=True)
    except OverflowError:  # a JSON integer of hundreds of digits
        raise where.error(f"{str(text)[:40]!r}... is too large for {what}.", "check the units of this value.") from None
    limit = COUNT_LIMITS.get(what)
    if limit is not None and value >= limit:
        raise where.error(f"{str(text)[:40]!r} is too large for {what} (the limit is {limit:.2g}).",
                          "check the units of this value.")
    return value


def parse_share(text: str | float | int | None, where: Where) -> float:
    """One mixture share: a finite number >= 0; an empty cell means 0."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return 0.0
    if isinstance(text, bool):
        raise where.error(f"expected a proportion between 0 and 1, got {text!r}.", "write shares as numbers that sum to 1.")
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise where.error(f"expected a proportion between 0 and 1, got {str(text)[:40]!r}.",
                          "write shares as numbers that sum to 1.") from None
    if not math.isfinite(value):
        raise where.error(f"the proportion is {str(text)[:40]!r}, not a finite number.", "write shares as numbers that sum to 1.")
    if value < 0:
        raise where.error(f"the proportion {value:g} is negative.", "shares must be >= 0 and sum to 1.")
    if value > MAX_SHARE:
        raise where.error(f"the proportion {value:g} is larger than 1.",
                          "write shares as fractions of 1 (not percentages or token counts).")
    return value


def parse_metric(text: str | float | int, where: Where) -> float:
    """One measured value: a finite number (NaN and infinity are rejected)."""
    if isinstance(text, bool):
        raise where.error(f"expected a number, got {text!r}.", "write the measured value as a number.")
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise where.error(f"expected a number, got {str(text)[:40]!r}.", "write the measured value as a number, "
                          "or leave the cell empty where it was not measured.") from None
    if not math.isfinite(value):
        raise where.error(f"the value is {str(text)[:40]!r}, not a finite number.",
                          "remove the measurement, or leave the cell empty where it was not measured.")
    if abs(value) > MAX_METRIC:
        raise where.error(f"the value {value:g} is outside the range of a loss or metric (|value| <= {MAX_METRIC:g}).",
                          "check the column holds a loss or metric, not a count or a timestamp.")
    return value


def normalise_mixture(mixture: dict[str, float], where: Where) -> tuple[dict[str, float], str | None]:
    """Shares that sum to 1; within 1% they are renormalised (and a note returned), beyond it rejected."""
    total = math.fsum(mixture.values())
    if not mixture or total <= 0:
        raise where.error("the mixture is empty: every share is 0 or missing.", "give each domain its share; they must sum to 1.")
    if abs(total - 1.0) <= 1e-9:
        return mixture, None
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise where.error(f"the shares sum to {total:.4g}, not 1 (tolerance {SUM_TOLERANCE:.0%}).",
                          "fix the shares of this row so they sum to 1.")
    return {k: v / total for k, v in mixture.items()}, f"shares summed to {total:.4g}, renormalised"


def scalar(text: str) -> Any:
    """A provenance cell as its natural type: int, float or the text itself."""
    stripped = text.strip()
    if stripped == "":
        return None
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        value = float(stripped)
    except ValueError:
        return stripped
    return value if math.isfinite(value) else stripped


def check_run_name(text: Any, where: Where) -> str:
    name = "" if text is None else str(text).strip()
    if not name:
        raise where.error("the run id is empty.", "give every row a run id.")
    if len(name) > 200:
        raise where.error("the run id is longer than 200 characters.", "use shorter run ids.")
    return name


def check_name(text: Any, where: Where, what: str) -> str:
    name = "" if text is None else str(text).strip()
    if not name:
        raise where.error(f"the {what} name is empty.", f"name every {what}.")
    if len(name) > 200:
        raise where.error(f"the {what} name is longer than 200 characters.", f"use a shorter {what} name.")
    return name
