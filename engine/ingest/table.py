"""Typed values that pass between the ingest steps: readers -> writer.

A reader turns a file into chunks of :class:`ParsedRun` fragments. A fragment
is what one place in a file says about one run: a row of a tidy CSV (one
checkpoint), a line of JSONL, or a joined row of a pair. Several fragments may
name the same run (checkpoints); the writer merges them and checks they agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ColumnRoles:
    """Explicit column roles for a tidy CSV (or the two files of a pair).

    run_id: column naming the run; default: the first of run_id, run, run_name, id, index.
    tokens: tokens seen at the checkpoint the row reports (tidy CSV).
    model_params: parameters of the proxy model.
    mixture: columns holding domain shares; the domain is the column name without its role prefix.
    metrics: columns holding evaluation values; the target is the column name without its role prefix.
    higher_is_better: targets (cleaned or raw column names) where a higher value is better.
    """

    run_id: str | None = None
    tokens: str | None = None
    model_params: str | None = None
    mixture: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    higher_is_better: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "tokens": self.tokens, "model_params": self.model_params,
            "mixture": list(self.mixture) if self.mixture is not None else None,
            "metrics": list(self.metrics) if self.metrics is not None else None,
            "higher_is_better": list(self.higher_is_better),
        }


@dataclass
class SourceFile:
    """A file as the user knows it, with where its domain and target names came from."""

    path: str
    display: str
    kind: str = ""  # tidy-csv | jsonl | regmix-mixture | regmix-loss | olmix-ratios | olmix-metrics | domain-metadata
    domain_columns: dict[str, str] = field(default_factory=dict)  # domain -> header as written
    target_columns: dict[str, str] = field(default_factory=dict)  # target -> header as written

    def column_of_domain(self, domain: str) -> str:
        return self.domain_columns.get(domain, domain)

    def column_of_target(self, target: str) -> str:
        return self.target_columns.get(target, target)


# Fields of a run that identify it: two fragments of one run must agree on them.
STATIC_FIELDS = ("mixture", "model_params", "tokens", "seed", "seq_len", "tokenizer", "framework", "method")


@dataclass
class ParsedRun:
    """What one place in a file says about one run.

    measurements: (target name, tokens seen or None for "end of run", value).
    tokens: the run's total tokens where the file states it; None where it is
        only implied by its checkpoints (the writer then takes the largest).
    """

    name: str
    mixture: dict[str, float]
    source: SourceFile
    line: int
    measurements: list[tuple[str, int | None, float]] = field(default_factory=list)
    model_params: int | None = None
    tokens: int | None = None
    seed: int | None = None
    seq_len: int | None = None
    tokenizer: str | None = None
    framework: str | None = None
    method: str = "static"
    provenance: dict[str, Any] = field(default_factory=dict)

    def static(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STATIC_FIELDS}

    def content_hash(self) -> str:
        """sha256 of the run's identity (mixture, scale, seed, setup); measurements are checked one by one."""
        return static_hash(self.static())


def static_hash(static: dict[str, Any]) -> str:
    text = json.dumps(static, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class DomainMetadata:
    """Facts about one training domain, from a metadata file or the CLI."""

    name: str
    source: SourceFile | None
    line: int | None
    unique_tokens: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    data_path: str | None = None


class Notes:
    """Things the import changed or noticed, for the report; repeated kinds are counted, not listed."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.items: list[str] = []
        self.overflow: dict[str, int] = {}

    def add(self, text: str, kind: str = "note") -> None:
        if len(self.items) < self.limit:
            self.items.append(text)
        else:
            self.overflow[kind] = self.overflow.get(kind, 0) + 1

    def as_list(self) -> list[str]:
        more = [f"... and {n} more {kind} notes" for kind, n in self.overflow.items()]
        return self.items + more
