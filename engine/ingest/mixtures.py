"""Candidate mixtures from a file or a form, for ``predict``, ``suggest``'s output and the Plan page's what-if.

One reader for every layout ingest reads (a RegMix mixture file, an Olmix ratios
file with its unnamed index and ``run``/``name``/``index`` bookkeeping columns, a
tidy CSV, JSONL) and for a plain ``run_id,<domain>,...`` CSV such as ``mixplan
suggest`` writes. Files are opened, sniffed and read by ingest's own functions;
every share passes ingest's checks (:func:`parse_share`) and its one sum tolerance
(:func:`normalise_mixture`), so a row ingest accepts is a row predict accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from engine.errors import InputError
from engine.ingest.detect import first_data_row, olmix_half, sniff
from engine.ingest import names
from engine.ingest.names import find_column, metric_role, mixture_role, shared_prefix
from engine.ingest.pairs import olmix_half as olmix_layout
from engine.ingest.readers import JsonlReader, csv_rows, wrong_width
from engine.ingest.table import ColumnRoles, Notes, SourceFile
from engine.ingest.validate import Where, check_run_name, normalise_mixture, parse_share

# Columns of a run file that are not shares (read by ingest into their own fields).
_NOT_SHARES = {c for group in (names.RUN_ID_COLUMNS, names.TOKENS_COLUMNS, names.TOTAL_TOKENS_COLUMNS,
                               names.PARAMS_COLUMNS, names.RUN_FIELD_COLUMNS) for c in group}


@dataclass(frozen=True)
class MixtureTable:
    """Named mixtures: ``shares`` is (m, k) in the order of the project's ``domains``, rows sum to 1."""

    names: list[str]
    domains: list[str]
    shares: np.ndarray
    notes: list[str] = field(default_factory=list)


def mixture_vector(mixture: dict[str, float], domains: list[str], where: Where) -> tuple[np.ndarray, str | None]:
    """One mixture in ``domains`` order by ingest's rules (names known, shares >= 0, sum 1 within the tolerance).

    Returns the (k,) shares and the note when the row was renormalised.
    """
    unknown = [d for d in mixture if d not in domains]
    if unknown:
        raise where.error(f"'{unknown[0]}' is not a domain of this project.", f"use the project's domains: {', '.join(domains)}.")
    shares = {d: parse_share(v, where) for d, v in mixture.items()}
    shares, note = normalise_mixture(shares, where)
    return np.array([shares.get(d, 0.0) for d in domains]), note


def read_mixtures(path: str | Path, domains: list[str]) -> MixtureTable:
    """Candidate mixtures from any file ingest reads (or a plain ``run_id,<domain>...`` CSV), in ``domains`` order.

    Column names are cleaned as ingest cleans them (role prefixes such as ``train_`` or ``mix:``, then a
    prefix every column shares, e.g. RegMix's ``the_pile_``); domains missing from the file get 0.
    """
    path = Path(path)
    source = SourceFile(str(path), path.name)
    if not path.exists():
        raise InputError("the file does not exist.", file=source.display, hint="give the path of a file of candidate mixtures.")
    sniffed = sniff(source)
    notes = Notes()
    kind = olmix_half(sniffed, first_data_row(source)) if sniffed.kind == "olmix" else sniffed.kind
    if kind == "jsonl":
        rows = _jsonl_rows(source, notes)
    elif kind in ("olmix-ratios", "regmix-mixture", "tidy-csv"):
        rows = _csv_rows(source, sniffed.header, kind, domains)
    else:
        what = "metrics" if kind in ("regmix-loss", "olmix-metrics") else "domain metadata"
        raise InputError(f"this is a {what} file, not a file of mixtures.", file=source.display, row=1,
                         hint="give the mixture file (one row of shares per candidate).")
    run_names: list[str] = []
    shares: list[np.ndarray] = []
    seen: set[str] = set()
    named: set[str] = set()
    for name, mixture, where in rows:
        if name in seen:
            continue  # a tidy file repeats a run once per checkpoint
        seen.add(name)
        named.update(mixture)
        vector, note = mixture_vector(mixture, domains, where)
        if note:
            notes.add(f"{source.display} line {where.line}: {note}", "renormalised")
        run_names.append(name)
        shares.append(vector)
    if not shares:
        raise InputError("the file has no mixture rows.", file=source.display, row=2,
                         hint="write a header row of domain names and one row of shares per candidate.")
    matrix = np.vstack(shares)
    missing = [d for d in domains if d not in named]
    out_notes = [f"domains not in the file get share 0: {', '.join(missing)}"] if missing else []
    return MixtureTable(run_names, list(domains), matrix, out_notes + notes.as_list())


def _jsonl_rows(source: SourceFile, notes: Notes) -> Iterator[tuple[str, dict[str, float], Where]]:
    reader = JsonlReader(source, ColumnRoles(), notes)
    for chunk in reader.chunks():
        for run in chunk:
            yield run.name, run.mixture, Where(source.display, run.line, "mixture")


def _csv_rows(source: SourceFile, header: list[str], kind: str,
              domains: list[str]) -> Iterator[tuple[str, dict[str, float], Where]]:
    if kind == "olmix-ratios":
        layout = olmix_layout(source, header)
        id_pos, columns = layout.id_pos, [p for p, _ in layout.data]
    else:
        id_column = find_column(header, names.RUN_ID_COLUMNS)
        id_pos = header.index(id_column) if id_column else None
        prefixed = [p for p, h in enumerate(header) if mixture_role(h) is not None]
        columns = prefixed or [p for p, h in enumerate(header)
                               if p != id_pos and h.strip().lower() not in _NOT_SHARES and metric_role(h) is None]
    mapping = _map_columns([header[p] for p in columns], domains, source.display)
    for number, (line, row) in enumerate(csv_rows(source), start=1):
        if len(row) != len(header):
            raise wrong_width(source, line, len(row), len(header))
        name = (check_run_name(row[id_pos], Where(source.display, line, header[id_pos])) if id_pos is not None
                else f"candidate {number}")
        mixture: dict[str, float] = {}
        for pos in columns:
            mixture[mapping[header[pos]]] = parse_share(row[pos], Where(source.display, line, header[pos]))
        yield name, mixture, Where(source.display, line, header[columns[0]])


def _map_columns(columns: list[str], domains: list[str], file: str) -> dict[str, str]:
    """Header -> domain: the name as written, without its role prefix, or without a prefix all columns share."""
    stripped = [mixture_role(c) or c for c in columns]
    prefix = shared_prefix(stripped) if not all(s in domains for s in stripped) else ""
    mapping = {}
    for column, short in zip(columns, stripped):
        for candidate in (column.strip(), short, short[len(prefix):] if prefix and short.startswith(prefix) else short):
            if candidate in domains:
                mapping[column] = candidate
                break
        else:
            raise InputError(f"column '{column}' names no domain of this project.", file=file, row=1, column=column,
                             hint=f"use the project's domains: {', '.join(domains)}.")
    return mapping
