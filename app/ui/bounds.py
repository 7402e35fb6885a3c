"""Bounds typed as text on the Plan page: ``github >= 0.05, web <= 0.4, code = 0.1``.

Quicker than the table for one or two domains, and the only practical way at 64.
"""

from __future__ import annotations

import re

from engine.errors import InputError

_ITEM = re.compile(r"^\s*(?P<domain>[^<>=]+?)\s*(?P<op>>=|<=|=)\s*(?P<share>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*$")


def parse_bounds(text: str, domains: list[str]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(lower, upper, fixed) shares from comma-separated ``domain >= share`` / ``<=`` / ``=`` items."""
    lower: dict[str, float] = {}
    upper: dict[str, float] = {}
    fixed: dict[str, float] = {}
    for position, item in enumerate(filter(str.strip, text.split(",")), start=1):
        match = _ITEM.match(item)
        if match is None:
            raise InputError(f"bound {position} '{item.strip()}' is not 'domain >= share', 'domain <= share' or "
                             "'domain = share'.", hint="write e.g. github >= 0.05, web <= 0.4 in the 'Bounds' field.")
        domain, op, share = match["domain"], match["op"], float(match["share"])
        if domain not in domains:
            raise InputError(f"bound {position}: no domain named '{domain}' in this project.",
                             hint=f"use one of {', '.join(domains[:8])}{'...' if len(domains) > 8 else ''}.")
        if not 0.0 <= share <= 1.0:
            raise InputError(f"bound {position}: the share {share:g} of '{domain}' is not between 0 and 1.",
                             hint="write shares as fractions, e.g. 0.05 for 5%.")
        {">=": lower, "<=": upper, "=": fixed}[op][domain] = share
    return lower, upper, fixed
