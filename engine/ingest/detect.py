"""Open a user's file safely and tell what it is: tidy CSV, JSONL, one half of a pair, or domain metadata.

Files are read as UTF-8 (a byte-order mark is allowed), line by line in
binary so that an undecodable byte is reported on its exact line.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from engine.config import Settings
from engine.errors import InputError
from engine.ingest.names import RUN_ID_COLUMNS, TOKENS_COLUMNS, find_column, metric_role, mixture_role
from engine.ingest.table import SourceFile

HEAD_BYTES = 65536
MAX_LINE_BYTES = 8 << 20  # a CSV row of 10,000 columns is ~100 KB; a longer line is not a log file
OLMIX_BOOKKEEPING = {"run", "name", "index"}
METADATA_FIELDS = {"unique_tokens", "tags", "data_path", "license"}


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_lines(source: SourceFile) -> Iterator[str]:
    """The file's lines as text; a byte that is not UTF-8 raises an InputError naming its line."""
    with open(source.path, "rb") as handle:
        # readline with a limit: one absurd line must not be read into memory whole.
        for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"the line is longer than {MAX_LINE_BYTES >> 20} MiB.", file=source.display, row=number,
                                 hint="a log file has one run or checkpoint per line; check that this is the right file.")
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"the file is not UTF-8 text: byte 0x{raw[exc.start]:02x} at position {exc.start + 1} "
                    "cannot be read.",
                    file=source.display, row=number,
                    hint="save the file as UTF-8 (in a spreadsheet: 'CSV UTF-8'; or `iconv -t UTF-8`).",
                ) from None


def check_readable(source: SourceFile) -> str:
    """Reject empty, binary and UTF-16 files up front; return the first non-blank character."""
    path = Path(source.path)
    if not path.exists():
        raise InputError("the file does not exist.", file=source.display, hint="check the path.")
    if path.is_dir():
        raise InputError("this is a folder, not a file.", file=source.display, hint="give the CSV/JSONL files inside it.")
    check_size(path.stat().st_size, source.display)
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    if not head.strip():
        raise InputError("the file is empty.", file=source.display, row=1,
                         hint="export the logs again; a CSV needs a header line and one row per run.")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("the file is UTF-16 encoded; mixplan reads UTF-8.", file=source.display, row=1,
                         hint="save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8 in.csv > out.csv`).")
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError("the file is binary (it contains NUL bytes), not CSV or JSON text.", file=source.display,
                         row=line, hint="upload the CSV or JSONL export of the logs.")
    for char in head.lstrip(b"\xef\xbb\xbf").decode("utf-8", errors="replace"):
        if not char.isspace():
            return char
    return ""


def check_size(size_bytes: int, display: str) -> None:
    """The same cap for the CLI and uploads (the dashboard's server.maxUploadSize is set to it too)."""
    limit_mb = Settings.from_env().max_upload_mb
    if size_bytes > limit_mb << 20:
        raise InputError(f"the file is {size_bytes / (1 << 20):.0f} MiB, more than the {limit_mb} MiB limit.", file=display,
                         hint="split it into smaller files, or raise the limit with MIXPLAN_MAX_UPLOAD_MB.")


@dataclass
class Sniffed:
    """A file with its kind and (for CSV) its header."""

    source: SourceFile
    kind: str
    header: list[str]


def read_header(source: SourceFile) -> list[str]:
    lines = text_lines(source)
    try:
        for row in csv.reader(lines):
            if any(cell.strip() for cell in row):
                return row
    except csv.Error as exc:
        raise InputError(f"the file is not valid CSV: {exc}.", file=source.display, row=1,
                         hint="export it again as CSV with a header line.") from None
    finally:
        lines.close()
    raise InputError("the file is empty.", file=source.display, row=1, hint="a CSV needs a header line and one row per run.")


def _is_metric_column(column: str) -> bool:
    return metric_role(column) is not None or column.lower().endswith("_loss")


def sniff(source: SourceFile) -> Sniffed:
    """Decide a file's kind from its name, first character and header."""
    first = check_readable(source)
    suffix = Path(source.display).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return Sniffed(source, "domain-metadata-yaml", [])
    if first == "{":
        return Sniffed(source, "jsonl", [])
    if first == "[":
        raise InputError("the file is a JSON array; mixplan reads JSON Lines (one run object per line).",
                         file=source.display, row=1, hint="write one JSON object per line (`jq -c '.[]' in.json`).")
    if suffix == ".json":
        raise InputError("the file does not start with a JSON object.", file=source.display, row=1,
                         hint="write one JSON object per line (JSONL).")
    header = read_header(source)
    if len(header) < 2:
        raise InputError(
            "the file is neither CSV (its first line has no comma-separated columns) nor JSON Lines.",
            file=source.display, row=1,
            hint="upload a CSV with a header line (run_id, mixture and metric columns) or a JSONL file.",
        )
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InputError(f"the header repeats the column(s) {', '.join(dupes)}.", file=source.display, row=1,
                         column=dupes[0], hint="give every column a distinct name.")
    lowered = [h.strip().lower() for h in header]
    if "domain" in lowered and METADATA_FIELDS & set(lowered) and not any(mixture_role(h) for h in header):
        return Sniffed(source, "domain-metadata-csv", header)
    if OLMIX_BOOKKEEPING <= set(lowered):
        return Sniffed(source, "olmix", header)
    id_column = find_column(header, RUN_ID_COLUMNS)
    data = [h for h in header if h != id_column]
    if id_column and data and find_column(header, TOKENS_COLUMNS) is None:
        if all(h.lower().startswith("train_") for h in data):
            return Sniffed(source, "regmix-mixture", header)
        if all(_is_metric_column(h) for h in data):
            return Sniffed(source, "regmix-loss", header)
    return Sniffed(source, "tidy-csv", header)


def olmix_half(sniffed: Sniffed, first_row: list[str] | None) -> str:
    """'olmix-ratios' or 'olmix-metrics': by file name, else by whether the first row's values sum to 1."""
    name = Path(sniffed.source.display).name.lower()
    if "ratio" in name or "mixture" in name:
        return "olmix-ratios"
    if "metric" in name or "bpb" in name or "loss" in name:
        return "olmix-metrics"
    values = []
    skip = {i for i, h in enumerate(sniffed.header) if h.strip().lower() in OLMIX_BOOKKEEPING | {"", "unnamed: 0"}}
    for i, cell in enumerate(first_row or []):
        if i in skip:
            continue
        try:
            values.append(float(cell))
        except ValueError:
            return "olmix-metrics"
    if values and all(0 <= v <= 1 for v in values) and abs(sum(values) - 1) <= 0.01:
        return "olmix-ratios"
    return "olmix-metrics"


def first_data_row(source: SourceFile) -> list[str] | None:
    lines = text_lines(source)
    try:
        rows = csv.reader(lines)
        next(rows, None)
        return next(rows, None)
    except csv.Error:
        return None
    finally:
        lines.close()

