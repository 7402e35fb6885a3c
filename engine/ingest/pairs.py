"""Readers for the two-file formats, joined by run id.

- RegMix: a mixture CSV (``index``, ``train_<corpus>_<domain>`` shares) and a
  loss CSV (``index``, ``metric/<corpus>_<domain>_val_loss``), one row per run.
- Olmix swarm: a ratios CSV and a metrics CSV, each written by pandas with its
  leading unnamed index column and the bookkeeping columns ``run`` (the id),
  ``name`` (display name, kept as provenance) and ``index``; domains such as
  ``dclm:health``, one bits-per-byte column per task (lower is better).

Memory: the metrics file is read first into a dict run id -> (line, values),
about 100 bytes plus 8 per value a run; the mixture file then streams in chunks.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Iterator

from engine.errors import InputError
from engine.ingest.names import RUN_ID_COLUMNS, clean_regmix_names, find_column
from engine.ingest.readers import csv_rows, wrong_width
from engine.ingest.table import Notes, ParsedRun, SourceFile
from engine.ingest.validate import Where, check_name, check_run_name, normalise_mixture, parse_metric, parse_share

RUNS_PER_CHUNK = 2000


@dataclass
class PairHalf:
    """One file of a pair: where its id column is and which columns hold data (with their cleaned names)."""

    source: SourceFile
    header: list[str]
    id_pos: int
    data: list[tuple[int, str]]
    display_name_pos: int | None = None


def regmix_halves(mixture: SourceFile, mix_header: list[str], loss: SourceFile, loss_header: list[str]) -> tuple[PairHalf, PairHalf]:
    mix_id = find_column(mix_header, RUN_ID_COLUMNS)
    loss_id = find_column(loss_header, RUN_ID_COLUMNS)
    mix_cols = [i for i, h in enumerate(mix_header) if h != mix_id]
    loss_cols = [i for i, h in enumerate(loss_header) if h != loss_id]
    domains, targets = clean_regmix_names([mix_header[i] for i in mix_cols], [loss_header[i] for i in loss_cols])
    mix = PairHalf(mixture, mix_header, mix_header.index(mix_id), list(zip(mix_cols, domains)))
    met = PairHalf(loss, loss_header, loss_header.index(loss_id), list(zip(loss_cols, targets)))
    return mix, met


def olmix_half(source: SourceFile, header: list[str]) -> PairHalf:
    lowered = [h.strip().lower() for h in header]
    bookkeeping = {lowered.index("run"), lowered.index("name"), lowered.index("index")}
    if lowered[0] in ("", "unnamed: 0"):
        bookkeeping.add(0)  # the pandas index column to_csv writes by default
    data = [(i, h.strip()) for i, h in enumerate(header) if i not in bookkeeping]
    return PairHalf(source, header, lowered.index("run"), data, display_name_pos=lowered.index("name"))


class PairReader:
    """Join a mixture file and a metrics file on the run id; every id must be in both."""

    def __init__(self, kind: str, mixture: PairHalf, metrics: PairHalf, notes: Notes) -> None:
        self.kind = kind
        self.mixture = mixture
        self.metrics = metrics
        self.notes = notes
        for half, what in ((mixture, "domain"), (metrics, "target")):
            if not half.data:
                raise InputError(f"the file has no {what} columns besides the run id.", file=half.source.display, row=1,
                                 hint="check that the right files were given as the pair.")
            seen: dict[str, str] = {}
            for pos, name in half.data:
                check_name(name, Where(half.source.display, 1, half.header[pos]), what)
                if name in seen:
                    raise InputError(f"columns '{seen[name]}' and '{half.header[pos]}' both name the {what} '{name}'.",
                                     file=half.source.display, row=1, column=half.header[pos], hint="keep one of them.")
                seen[name] = half.header[pos]
        mixture.source.domain_columns.update({name: mixture.header[pos] for pos, name in mixture.data})
        metrics.source.target_columns.update({name: metrics.header[pos] for pos, name in metrics.data})

    def direction(self, target: str) -> str:
        return "lower"  # RegMix losses and Olmix bits per byte: lower is better

    def declared(self) -> tuple[list[str], list[str]]:
        return [d for _, d in self.mixture.data], [t for _, t in self.metrics.data]

    def _load_metrics(self) -> dict[str, tuple[int, array | None]]:
        half = self.metrics
        display, header = half.source.display, half.header
        targets = [name for _, name in half.data]
        values: dict[str, tuple[int, array | None]] = {}
        for line, row in csv_rows(half.source):
            if len(row) != len(header):
                raise wrong_width(half.source, line, len(row), len(header))
            run = check_run_name(row[half.id_pos], Where(display, line, header[half.id_pos]))
            # NaN marks a cell that was not measured; a value in it is stored, a NaN never is.
            cells = array("d", (parse_metric(row[p], Where(display, line, header[p])) if row[p].strip() else float("nan")
                                for p, _ in half.data))
            if run in values:
                first_line, first = values[run]
                if first is not None and list(map(repr, first)) != list(map(repr, cells)):
                    column = next(header[p] for (p, _), a, b in zip(half.data, first, cells) if repr(a) != repr(b))
                    raise InputError(f"run '{run}' appears twice with different values (first at line {first_line}).",
                                     file=display, row=line, column=column, hint="keep one row per run.")
                continue
            values[run] = (line, cells)
        self._targets = targets
        return values

    def chunks(self, runs_per_chunk: int | None = None) -> Iterator[list[ParsedRun]]:
        runs_per_chunk = runs_per_chunk or RUNS_PER_CHUNK
        metrics = self._load_metrics()
        half = self.mixture
        display, header = half.source.display, half.header
        chunk: list[ParsedRun] = []
        for line, row in csv_rows(half.source):
            if len(row) != len(header):
                raise wrong_width(half.source, line, len(row), len(header))
            id_where = Where(display, line, header[half.id_pos])
            run = check_run_name(row[half.id_pos], id_where)
            entry = metrics.get(run)
            if entry is None and run not in metrics:
                raise id_where.error(f"run '{run}' is in {display} but not in {self.metrics.source.display}.",
                                     f"add its row to {self.metrics.source.display} or remove it from {display}.")
            chunk.append(self._run(line, row, run, entry))
            metrics[run] = (entry[0] if entry else 0, None)  # seen: keep the key, drop the values
            if len(chunk) >= runs_per_chunk:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        missing = [(run, line) for run, (line, cells) in metrics.items() if cells is not None]
        if missing:
            run, line = missing[0]
            raise InputError(
                f"run '{run}' is in {self.metrics.source.display} but not in {display}"
                + (f" ({len(missing) - 1} more such runs)." if len(missing) > 1 else "."),
                file=self.metrics.source.display, row=line, column=self.metrics.header[self.metrics.id_pos],
                hint=f"add its mixture to {display} or remove it from {self.metrics.source.display}.",
            )

    def _run(self, line: int, row: list[str], run: str, entry: tuple[int, array | None] | None) -> ParsedRun:
        half = self.mixture
        display, header = half.source.display, half.header
        mixture = {}
        for pos, domain in half.data:
            mixture[domain] = parse_share(row[pos], Where(display, line, header[pos]))
        mixture, note = normalise_mixture(mixture, Where(display, line, header[half.data[0][0]]))
        if note:
            self.notes.add(f"{display} line {line}: {note}", "renormalised")
        measurements = []
        if entry is not None and entry[1] is not None:
            measurements = [(t, None, v) for t, v in zip(self._targets, entry[1]) if v == v]
        provenance = {}
        if half.display_name_pos is not None and row[half.display_name_pos].strip():
            provenance["display_name"] = row[half.display_name_pos].strip()
        return ParsedRun(name=run, mixture=mixture, source=half.source, line=line, measurements=measurements,
                         provenance=provenance)
