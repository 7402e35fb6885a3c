"""A plan in the formats training frameworks and people read.

JSON and YAML hold the whole plan; the Megatron-LM, Hugging Face ``datasets``
and MosaicML streaming outputs hold the mixture with each domain's data path
where the project knows it (a ``/path/to/<domain>`` placeholder otherwise).
CSV cells are written so a spreadsheet cannot run them (OWASP CSV injection:
a cell starting with ``= + - @`` or a tab/CR gets a leading quote).
"""

from __future__ import annotations

import csv
import io
import json
import shlex

import yaml

from engine.errors import InputError
from engine.plan.plan import Plan

FORMATS = ("json", "yaml", "megatron", "hf", "mosaic", "csv")
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text, never as a formula. Numbers are written as numbers:
    a quote before ``-0.5`` would make a spreadsheet read a negative figure as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value)) if isinstance(value, float) else str(value)
    text = "" if value is None else str(value)
    if text.startswith(_DANGEROUS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    """Plain numeric text such as ``-1.5e-3`` (not ``-1+2``, not ``=1``): safe in a spreadsheet."""
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower().lstrip("+-") not in ("inf", "infinity", "nan")


def write_csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


def _path(plan: Plan, domain: str) -> str:
    return plan.domain_paths.get(domain) or f"/path/to/{domain}"


def _shares(plan: Plan) -> list[tuple[str, float]]:
    return [(d, s) for d, s in plan.recommended.mixture.items() if s > 0]


def to_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2)


def to_yaml(plan: Plan) -> str:
    return yaml.safe_dump(plan.to_dict(), sort_keys=False)


def to_megatron(plan: Plan) -> str:
    """Megatron-LM ``--data-path`` takes alternating weights and dataset prefixes."""
    parts = " ".join(f"{share:.10g} {shlex.quote(_path(plan, d))}" for d, share in _shares(plan))
    return f"--data-path {parts}\n"


def to_hf(plan: Plan) -> str:
    names = [d for d, _ in _shares(plan)]
    lines = ["from datasets import interleave_datasets, load_dataset", ""]
    lines += [f"{_ident(d)} = {_hf_load(_path(plan, d))}" for d in names]
    lines += ["", "mixture = interleave_datasets(",
              f"    [{', '.join(_ident(d) for d in names)}],",
              f"    probabilities=[{', '.join(f'{s:.10g}' for _, s in _shares(plan))}],",
              "    seed=0,", "    stopping_strategy='all_exhausted',", ")", ""]
    return "\n".join(lines)


_HF_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}


def _hf_load(path: str) -> str:
    """A file path loads through its builder (``load_dataset("json", data_files=...)``); anything else is a Hub id."""
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if suffix in _HF_BUILDERS:
        return f"load_dataset({_HF_BUILDERS[suffix]!r}, data_files={path!r}, split='train', streaming=True)"
    return f"load_dataset({path!r}, split='train', streaming=True)"


def to_mosaic(plan: Plan) -> str:
    lines = ["from streaming import Stream, StreamingDataset", "", "streams = ["]
    for d, share in _shares(plan):
        path = _path(plan, d)
        remote = path if "://" in path else None
        local = None if remote else path
        lines.append(f"    Stream(remote={remote!r}, local={(local or '/tmp/mds/' + d)!r}, proportion={share:.10g}),")
    lines += ["]", "dataset = StreamingDataset(streams=streams, shuffle=True)", ""]
    return "\n".join(lines)


def to_csv(plan: Plan) -> str:
    """One row per option (plan and baselines): objective, interval and shares."""
    header = ["option", "objective", "lo", "hi", *plan.domains]
    rows = [[o.name, o.objective, *o.objective_interval, *o.mixture.values()]
            for o in [plan.recommended, *plan.baselines]]
    return write_csv(header, rows)


def export(plan: Plan, fmt: str) -> str:
    writers = {"json": to_json, "yaml": to_yaml, "megatron": to_megatron, "hf": to_hf,
               "mosaic": to_mosaic, "csv": to_csv}
    if fmt not in writers:
        raise InputError(f"--format '{fmt}' is unknown.", hint=f"use one of: {', '.join(FORMATS)}.")
    return writers[fmt](plan)


def _ident(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return ("ds_" + cleaned) if not cleaned[:1].isalpha() else cleaned
