"""Readers for the one-file formats: tidy CSV and JSONL.

Each reader yields chunks of :class:`ParsedRun` fragments, so a file of any
size is held in memory one chunk at a time. Values are checked as they are
read; the first bad one raises an InputError naming file, line and column.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, Callable, Iterator

from engine.errors import InputError
from engine.ingest.detect import text_lines
from engine.ingest.names import (
    PARAMS_COLUMNS,
    RUN_FIELD_COLUMNS,
    RUN_ID_COLUMNS,
    TOKENS_COLUMNS,
    TOTAL_TOKENS_COLUMNS,
    find_column,
    guess_direction,
    metric_role,
    mixture_role,
    strip_target_suffix,
)
from engine.ingest.table import ColumnRoles, Notes, ParsedRun, SourceFile
from engine.ingest.validate import (
    MAX_METRIC,
    MAX_SHARE,
    Where,
    check_name,
    check_run_name,
    normalise_mixture,
    parse_metric,
    parse_optional_count,
    parse_share,
    scalar,
)

ROWS_PER_CHUNK = 5000


def csv_rows(source: SourceFile) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every non-blank data row after the header.

    A quoted cell may hold line breaks, but a quote left open swallows the rows after it into one cell:
    a cell whose later lines look like rows (as many commas as the header has separators) is rejected
    at the line where its row starts, where the quote opens. A header with no rows is an error.
    """
    lines = text_lines(source)
    reader = csv.reader(lines)
    start = line = 0
    rows = width = 0
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            if line > start and width and _swallows_rows(row, width):
                raise _open_quote(source, start, line)
            if not any(cell.strip() for cell in row):
                continue
            if not width:
                width = len(row)
                continue
            rows += 1
            yield start, row
    except csv.Error as exc:
        if reader.line_num > line + 1:  # the reader ran on past the row's first line looking for a closing quote
            raise _open_quote(source, line + 1, reader.line_num) from None
        raise InputError(f"the file is not valid CSV: {exc}.", file=source.display, row=line + 1,
                         hint="check the quoting on this line.") from None
    finally:
        lines.close()
    if not rows:
        raise InputError("the file has a header line but no data rows.", file=source.display, row=2,
                         hint="export the logs again with one row per run (or per checkpoint) under the header.")


def _swallows_rows(row: list[str], width: int) -> bool:
    for cell in row:
        continued = cell.splitlines()[1:]
        if any(part.count(",") >= width - 1 for part in continued):
            return True
    return False


def _open_quote(source: SourceFile, start: int, end: int) -> InputError:
    return InputError(f"a quote opened on this line is not closed where its cell ends: the rows up to line {end} "
                      "would become part of one cell.", file=source.display, row=start,
                      hint="close the quote on this line, or remove it.")


def wrong_width(source: SourceFile, line: int, got: int, expected: int) -> InputError:
    return InputError(f"the row has {got} fields but the header has {expected}.", file=source.display, row=line,
                      hint="every row needs one value per header column (leave a cell empty, do not drop it).")


@dataclass
class TidyLayout:
    """Which column of a tidy CSV plays which role (positions into the header)."""

    run_id: int
    tokens: int | None
    total_tokens: int | None
    model_params: int | None
    run_fields: dict[str, int]
    mixture: list[tuple[int, str]]  # (position, domain)
    metrics: list[tuple[int, str]]  # (position, target)
    provenance: list[tuple[int, str]]
    directions: dict[str, str]


def _position(header: list[str], column: str | None, source: SourceFile, flag: str) -> int | None:
    if column is None:
        return None
    if column not in header:
        raise InputError(f"the column given with {flag} is not in the header.", file=source.display, row=1,
                         column=column, hint=f"use one of: {', '.join(header)}.")
    return header.index(column)


def tidy_layout(source: SourceFile, header: list[str], roles: ColumnRoles) -> TidyLayout:
    """Resolve column roles from explicit ``roles`` or the documented prefixes."""
    run_col = roles.run_id or find_column(header, RUN_ID_COLUMNS)
    if run_col is None:
        raise InputError(
            "the header has no run-id column.", file=source.display, row=1, column="run_id",
            hint=f"name the column one of {', '.join(RUN_ID_COLUMNS)}, or say which one with --run-id-col.",
        )
    run_pos = _position(header, run_col, source, "--run-id-col")
    tokens_pos = _position(header, roles.tokens or find_column(header, TOKENS_COLUMNS), source, "--tokens-col")
    total_pos = _position(header, find_column(header, TOTAL_TOKENS_COLUMNS), source, "total_tokens")
    params_pos = _position(header, roles.model_params or find_column(header, PARAMS_COLUMNS), source, "--params-col")
    used = {run_pos, tokens_pos, total_pos, params_pos} - {None}
    run_fields = {}
    for name in RUN_FIELD_COLUMNS:
        found = find_column(header, (name,))
        if found is not None and header.index(found) not in used:
            run_fields[name] = header.index(found)
    used |= set(run_fields.values())

    higher = set(roles.higher_is_better)
    directions: dict[str, str] = {}
    mixture: list[tuple[int, str]] = []
    metrics: list[tuple[int, str]] = []
    if roles.mixture is not None:
        for column in roles.mixture:
            pos = _position(header, column, source, "--mixture-cols")
            mixture.append((pos, mixture_role(column) or column))
    if roles.metrics is not None:
        for column in roles.metrics:
            pos = _position(header, column, source, "--metric-cols")
            role = metric_role(column)
            target = role[0] if role else strip_target_suffix(column)
            metrics.append((pos, target))
            directions[target] = role[1] if role else guess_direction(target)
    explicit = {p for p, _ in mixture} | {p for p, _ in metrics}
    for pos, column in enumerate(header):
        if pos in used or pos in explicit:
            continue
        if roles.mixture is None and (domain := mixture_role(column)) is not None:
            mixture.append((pos, domain))
        elif roles.metrics is None and (role := metric_role(column)) is not None:
            metrics.append((pos, role[0]))
            directions[role[0]] = role[1]
    for target in directions:
        if target in higher or source.target_columns.get(target) in higher:
            directions[target] = "higher"
    for pos, target in metrics:
        if header[pos] in higher:
            directions[target] = "higher"
    taken = used | {p for p, _ in mixture} | {p for p, _ in metrics}
    provenance = [(pos, column.strip()) for pos, column in enumerate(header) if pos not in taken]
    _check_roles(source, header, mixture, metrics)
    source.domain_columns.update({d: header[p] for p, d in mixture})
    source.target_columns.update({t: header[p] for p, t in metrics})
    return TidyLayout(run_pos, tokens_pos, total_pos, params_pos, run_fields, mixture, metrics, provenance, directions)


def _check_roles(source: SourceFile, header: list[str], mixture: list, metrics: list) -> None:
    if not mixture:
        raise InputError(
            "no mixture columns found.", file=source.display, row=1,
            hint="prefix each domain's share column with 'mix:', 'p_' or 'train_' (e.g. mix:web), or list them with --mixture-cols.",
        )
    if not metrics:
        raise InputError(
            "no metric columns found.", file=source.display, row=1,
            hint="prefix each metric column with 'loss:', 'metric/', 'eval_' (lower is better) or 'acc:' (higher is better), "
                 "or list them with --metric-cols.",
        )
    for what, pairs in (("domain", mixture), ("target", metrics)):
        seen: dict[str, int] = {}
        for pos, name in pairs:
            check_name(name, Where(source.display, 1, header[pos]), what)
            if name in seen:
                raise InputError(f"columns '{header[seen[name]]}' and '{header[pos]}' both name the {what} '{name}'.",
                                 file=source.display, row=1, column=header[pos], hint="keep one of them.")
            seen[name] = pos


def _getter(positions: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    """itemgetter that always returns a tuple (itemgetter of one position returns the bare item)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return itemgetter(*positions)


class TidyCsvReader:
    """One row per run and checkpoint: run id, tokens seen, model size, shares, metric values, anything else."""

    def __init__(self, source: SourceFile, header: list[str], roles: ColumnRoles, notes: Notes) -> None:
        self.source = source
        self.header = header
        self.layout = tidy_layout(source, header, roles)
        self.notes = notes
        self._domain_names = [d for _, d in self.layout.mixture]
        self._target_names = [t for _, t in self.layout.metrics]
        self._mixture_cells = _getter([p for p, _ in self.layout.mixture])
        self._metric_cells = _getter([p for p, _ in self.layout.metrics])
        extra = [name for _, name in self.layout.provenance]
        if extra:
            notes.add(f"{source.display}: columns kept as provenance (not mixture or metric): {', '.join(extra)}", "columns")

    def direction(self, target: str) -> str:
        return self.layout.directions.get(target, "lower")

    def declared(self) -> tuple[list[str], list[str]]:
        """Domains and targets the header names, in column order."""
        return [d for _, d in self.layout.mixture], [t for _, t in self.layout.metrics]

    def chunks(self, rows_per_chunk: int | None = None) -> Iterator[list[ParsedRun]]:
        rows_per_chunk = rows_per_chunk or ROWS_PER_CHUNK
        chunk: list[ParsedRun] = []
        for line, row in csv_rows(self.source):
            chunk.append(self.parse_row(line, row))
            if len(chunk) >= rows_per_chunk:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def parse_row(self, line: int, row: list[str]) -> ParsedRun:
        layout, header, display = self.layout, self.header, self.source.display
        if len(row) != len(header):
            raise wrong_width(self.source, line, len(row), len(header))
        name = check_run_name(row[layout.run_id], Where(display, line, header[layout.run_id]))
        mixture = self._shares(line, row)
        mixture, note = normalise_mixture(mixture, Where(display, line, header[layout.mixture[0][0]]))
        if note:
            self.notes.add(f"{display} line {line}: {note}", "renormalised")
        tokens_seen = None
        if layout.tokens is not None:
            tokens_seen = self._count(row, layout.tokens, line, "a token count")
        measurements = self._metrics(line, row, tokens_seen)
        return ParsedRun(
            name=name, mixture=mixture, source=self.source, line=line, measurements=measurements,
            model_params=self._count(row, layout.model_params, line, "a parameter count"),
            tokens=self._count(row, layout.total_tokens, line, "a token count"),
            seed=self._count(row, layout.run_fields.get("seed"), line, "a whole-number seed"),
            seq_len=self._count(row, layout.run_fields.get("seq_len"), line, "a sequence length"),
            tokenizer=self._text(row, "tokenizer", line, 200),
            framework=self._text(row, "framework", line, 200),
            method=self._text(row, "method", line, 40) or "static",
            provenance={column: value for pos, column in layout.provenance if (value := scalar(row[pos])) is not None},
        )

    # The fast paths convert a whole row in C (itemgetter + map(float)); a row with anything unusual
    # (empty, negative, non-finite, not a number) is converted again cell by cell for the precise message.

    def _shares(self, line: int, row: list[str]) -> dict[str, float]:
        try:
            values = list(map(float, self._mixture_cells(row)))
            if values and math.isfinite(sum(values)) and min(values) >= 0 and max(values) <= MAX_SHARE:
                return dict(zip(self._domain_names, values))
        except ValueError:
            pass
        return {domain: parse_share(row[pos], Where(self.source.display, line, self.header[pos]))
                for pos, domain in self.layout.mixture}

    def _metrics(self, line: int, row: list[str], tokens_seen: int | None) -> list[tuple[str, int | None, float]]:
        try:
            values = list(map(float, self._metric_cells(row)))
            if math.isfinite(sum(values)) and (not values or max(map(abs, values)) <= MAX_METRIC):
                return list(zip(self._target_names, repeat(tokens_seen), values))
        except ValueError:
            pass
        return [(target, tokens_seen, parse_metric(row[pos], Where(self.source.display, line, self.header[pos])))
                for pos, target in self.layout.metrics if row[pos].strip()]

    def _text(self, row: list[str], field: str, line: int, limit: int) -> str | None:
        pos = self.layout.run_fields.get(field)
        if pos is None:
            return None
        text = row[pos].strip()
        if len(text) > limit:
            raise InputError(f"the {field} is longer than {limit} characters.", file=self.source.display, row=line,
                             column=self.header[pos], hint="shorten it (longer notes can go in another column).")
        return text or None

    def _count(self, row: list[str], pos: int | None, line: int, what: str) -> int | None:
        if pos is None:
            return None
        return parse_optional_count(row[pos], Where(self.source.display, line, self.header[pos]), what)


MAX_JSON_DEPTH = 16  # a run needs 3 levels (run > measurements > item); provenance a few more


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (so any depth the parser accepted is measured)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


JSONL_RUN_KEYS = {"mixture", "measurements", "model_params", "tokens", "seed", "seq_len", "tokenizer", "framework", "method"}
RUNS_PER_CHUNK = 1000


class JsonlReader:
    """One JSON object per line: run_id, mixture {domain: share}, measurements [{target, tokens, value}], provenance."""

    def __init__(self, source: SourceFile, roles: ColumnRoles, notes: Notes) -> None:
        self.source = source
        self.notes = notes
        self.higher = set(roles.higher_is_better)

    def direction(self, target: str) -> str:
        return "higher" if target in self.higher else guess_direction(target)

    def declared(self) -> tuple[list[str], list[str]]:
        return [], []  # JSONL names its domains and targets run by run

    def chunks(self, runs_per_chunk: int | None = None) -> Iterator[list[ParsedRun]]:
        runs_per_chunk = runs_per_chunk or RUNS_PER_CHUNK
        chunk: list[ParsedRun] = []
        for line, text in enumerate(text_lines(self.source), start=1):
            if not text.strip():
                continue
            chunk.append(self.parse_line(line, text))
            if len(chunk) >= runs_per_chunk:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def parse_line(self, line: int, text: str) -> ParsedRun:
        display = self.source.display
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc.msg} (character {exc.colno}).", file=display, row=line,
                             hint="write one complete JSON object per line.") from None
        except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits, absurd nesting
            raise InputError(f"not readable JSON: {exc}.", file=display, row=line,
                             hint="write one JSON object per line with plain numbers and text.") from None
        if json_depth(obj) > MAX_JSON_DEPTH:
            raise InputError(f"the object is nested more than {MAX_JSON_DEPTH} levels deep.", file=display, row=line,
                             hint="a run is an object with a mixture, a list of measurements and flat provenance fields.")
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object for one run, got {type(obj).__name__}.", file=display, row=line,
                             hint='write {"run_id": ..., "mixture": {...}, "measurements": [...]} per line.')
        id_key = next((k for k in RUN_ID_COLUMNS if k in obj), None)
        if id_key is None:
            raise InputError("the object has no run id.", file=display, row=line, column="run_id",
                             hint='add "run_id": "<name>" to every line.')
        name = check_run_name(obj[id_key], Where(display, line, id_key))
        mixture = self._mixture(obj.get("mixture"), line)
        where = lambda key: Where(display, line, key)  # noqa: E731
        return ParsedRun(
            name=name, mixture=mixture, source=self.source, line=line,
            measurements=self._measurements(obj.get("measurements"), line),
            model_params=parse_optional_count(obj.get("model_params"), where("model_params"), "a parameter count"),
            tokens=parse_optional_count(obj.get("tokens"), where("tokens"), "a token count"),
            seed=parse_optional_count(obj.get("seed"), where("seed"), "a whole-number seed"),
            seq_len=parse_optional_count(obj.get("seq_len"), where("seq_len"), "a sequence length"),
            tokenizer=self._text(obj.get("tokenizer"), line, "tokenizer"),
            framework=self._text(obj.get("framework"), line, "framework"),
            method=self._text(obj.get("method"), line, "method") or "static",
            provenance={k: v for k, v in obj.items() if k not in JSONL_RUN_KEYS and k != id_key},
        )

    def _text(self, value: Any, line: int, key: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InputError(f"expected text, got {json.dumps(value)[:60]}.", file=self.source.display, row=line, column=key)
        limit = 40 if key == "method" else 200
        text = str(value).strip()
        if len(text) > limit:
            raise InputError(f"the {key} is longer than {limit} characters.", file=self.source.display, row=line,
                             column=key, hint="shorten it.")
        return text or None

    def _mixture(self, raw: Any, line: int) -> dict[str, float]:
        display = self.source.display
        if not isinstance(raw, dict) or not raw:
            raise InputError("expected \"mixture\": an object {domain: share}.", file=display, row=line, column="mixture",
                             hint='e.g. "mixture": {"web": 0.7, "code": 0.3}.')
        mixture = {}
        for domain, share in raw.items():
            where = Where(display, line, f"mixture.{domain}")
            domain = check_name(domain, where, "domain")
            if isinstance(share, str) or share is None:
                raise where.error(f"expected a proportion between 0 and 1, got {share!r}.", "write shares as numbers.")
            mixture[domain] = parse_share(share, where)
        mixture, note = normalise_mixture(mixture, Where(display, line, "mixture"))
        if note:
            self.notes.add(f"{display} line {line}: {note}", "renormalised")
        return mixture

    def _measurements(self, raw: Any, line: int) -> list[tuple[str, int | None, float]]:
        display = self.source.display
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise InputError("expected \"measurements\": a list of {target, tokens, value}.", file=display, row=line,
                             column="measurements", hint='e.g. [{"target": "val_loss", "tokens": 1000000, "value": 3.2}].')
        out = []
        for i, item in enumerate(raw):
            key = f"measurements[{i}]"
            if not isinstance(item, dict) or "target" not in item or "value" not in item:
                raise InputError("expected an object with \"target\" and \"value\" (and optional \"tokens\").",
                                 file=display, row=line, column=key)
            target = check_name(item["target"], Where(display, line, f"{key}.target"), "target")
            value = item["value"]
            if value is None or isinstance(value, str):
                raise InputError(f"expected a number, got {value!r}.", file=display, row=line, column=f"{key}.value",
                                 hint="write the measured value as a JSON number.")
            value = parse_metric(value, Where(display, line, f"{key}.value"))
            tokens = parse_optional_count(item.get("tokens"), Where(display, line, f"{key}.tokens"), "a token count")
            out.append((target, tokens, value))
        return out

