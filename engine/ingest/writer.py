"""Write parsed runs into the store, one chunk at a time, inside the caller's transaction.

Per chunk: merge the fragments of each run and check they agree; create
missing domains and targets; look up which runs the project already has;
insert new runs (Core executemany with RETURNING for their ids) and the
measurements that are new. Measurements are the bulk (runs x targets x
checkpoints), so they go through the driver directly: ``executemany`` of
plain tuples on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL (psycopg 3).
Both stay in the session's transaction, so a later rejection rolls them back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

from engine.errors import InputError
from engine.ingest.table import STATIC_FIELDS, DomainMetadata, ParsedRun
from engine.store.models import Domain, EvalTarget, Measurement, Run

log = logging.getLogger(__name__)

LOOKUP_BATCH = 500  # names per IN (...) query, well under every driver's parameter limit
MEASUREMENT_COLUMNS = ("run_id", "target_id", "tokens_seen", "value")


@dataclass
class WriteCounts:
    runs_added: int = 0
    runs_unchanged: int = 0
    runs_extended: int = 0
    measurements_added: int = 0
    measurements_unchanged: int = 0
    metadata_changed: int = 0
    domains: dict[str, None] = field(default_factory=dict)  # ordered set of names this import touched
    targets: dict[str, None] = field(default_factory=dict)


def insert_measurement_rows(connection: Connection, rows: list[tuple]) -> None:
    """Bulk-insert (run_id, target_id, tokens_seen, value) tuples with the driver's fastest path."""
    if not rows:
        return
    driver = connection.connection.driver_connection
    if connection.dialect.name == "postgresql" and hasattr(driver, "cursor"):
        with driver.cursor() as cursor:
            with cursor.copy(f"COPY measurement ({', '.join(MEASUREMENT_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    if connection.dialect.name == "sqlite":
        cursor = driver.cursor()
        try:
            cursor.executemany("INSERT INTO measurement (run_id, target_id, tokens_seen, value) VALUES (?, ?, ?, ?)", rows)
        finally:
            cursor.close()
        return
    connection.execute(insert(Measurement), [dict(zip(MEASUREMENT_COLUMNS, row)) for row in rows])


@dataclass
class _Merged:
    first: ParsedRun
    content_hash: str
    measurements: dict[tuple[str, int | None], float]


class BatchWriter:
    """Writes one import (a batch) into one project; every call runs in the caller's transaction."""

    def __init__(self, session: Session, project_id: int, batch_id: int) -> None:
        self.session = session
        self.connection = session.connection()
        self.project_id = project_id
        self.batch_id = batch_id
        self.counts = WriteCounts()
        self.domain_ids = dict(session.execute(select(Domain.name, Domain.id).where(Domain.project_id == project_id)).all())
        self.target_ids = dict(session.execute(
            select(EvalTarget.name, EvalTarget.id).where(EvalTarget.project_id == project_id)).all())
        self.target_directions = dict(session.execute(
            select(EvalTarget.name, EvalTarget.direction).where(EvalTarget.project_id == project_id)).all())
        self._earlier_runs_seen: set[int] = set()  # runs of earlier imports touched (grows only on re-imports)
        self.direction_notes: list[str] = []

    # -- names ---------------------------------------------------------------------------------------------

    def ensure_domains(self, names: Iterable[str]) -> None:
        missing = [n for n in dict.fromkeys(names) if n not in self.domain_ids]
        if missing:
            rows = [{"project_id": self.project_id, "name": n, "tags": {}, "unique_tokens": None, "data_path": None}
                    for n in missing]
            for row_id, name in self.connection.execute(insert(Domain).returning(Domain.id, Domain.name), rows):
                self.domain_ids[name] = row_id

    def ensure_targets(self, names: Iterable[str], direction: Callable[[str], str]) -> None:
        missing = []
        for name in dict.fromkeys(names):
            wanted = direction(name)
            if name not in self.target_ids:
                missing.append({"project_id": self.project_id, "name": name, "direction": wanted, "unit": ""})
            elif self.target_directions.get(name) != wanted and name not in self.direction_notes:
                self.direction_notes.append(name)
        if missing:
            for row_id, name in self.connection.execute(insert(EvalTarget).returning(EvalTarget.id, EvalTarget.name), missing):
                self.target_ids[name] = row_id
            self.target_directions.update({row["name"]: row["direction"] for row in missing})

    # -- runs ----------------------------------------------------------------------------------------------

    def write_chunk(self, chunk: list[ParsedRun], direction: Callable[[str], str]) -> None:
        merged = self._merge(chunk)
        domains: dict[str, None] = {}
        targets: dict[str, None] = {}
        for m in merged.values():
            domains.update(dict.fromkeys(m.first.mixture))
            targets.update(dict.fromkeys(t for t, _ in m.measurements))
        self.ensure_domains(domains)
        self.ensure_targets(targets, direction)
        self.counts.domains.update(domains)
        self.counts.targets.update(targets)
        existing = self._existing_runs(list(merged))
        new_names = [name for name in merged if name not in existing]
        run_ids = {name: row[0] for name, row in existing.items()}
        for name, (run_id, stored_hash, batch_id) in existing.items():
            m = merged[name]
            if stored_hash != m.content_hash:
                raise self._conflict_with_stored(m.first, run_id, batch_id)
            if batch_id != self.batch_id and run_id not in self._earlier_runs_seen:
                self._earlier_runs_seen.add(run_id)
                self.counts.runs_unchanged += 1
        run_ids.update(self._insert_runs([merged[n] for n in new_names]))
        self.counts.runs_added += len(new_names)
        rows = self._new_measurements(merged, run_ids, existing)
        insert_measurement_rows(self.connection, rows)
        self.counts.measurements_added += len(rows)

    def _merge(self, chunk: list[ParsedRun]) -> dict[str, _Merged]:
        merged: dict[str, _Merged] = {}
        for run in chunk:
            m = merged.get(run.name)
            if m is None:
                values = {(target, tokens): value for target, tokens, value in run.measurements}
                if len(values) == len(run.measurements):
                    merged[run.name] = _Merged(run, run.content_hash(), values)
                    continue
                m = merged[run.name] = _Merged(run, run.content_hash(), {})
            elif run.static() != m.first.static():
                raise _conflict(run, m.first.static(), f"line {m.first.line}")
            values = m.measurements
            for target, tokens, value in run.measurements:
                key = (target, tokens)
                old = values.get(key)
                if old is None:
                    values[key] = value
                elif old != value:
                    at = "the end of the run" if tokens is None else f"{tokens} tokens"
                    raise InputError(
                        f"run '{run.name}' has two different values for '{target}' at {at}: {old!r} earlier in the "
                        f"file and {value!r} here.", file=run.source.display, row=run.line,
                        column=run.source.column_of_target(target), hint="keep one row per run and checkpoint.")
        return merged

    def _existing_runs(self, names: list[str]) -> dict[str, tuple[int, str, int | None]]:
        found = {}
        for start in range(0, len(names), LOOKUP_BATCH):
            part = names[start:start + LOOKUP_BATCH]
            rows = self.connection.execute(
                select(Run.name, Run.id, Run.content_hash, Run.batch_id)
                .where(Run.project_id == self.project_id, Run.name.in_(part)))
            found.update({name: (run_id, h, b) for name, run_id, h, b in rows})
        return found

    def _conflict_with_stored(self, run: ParsedRun, run_id: int, batch_id: int | None) -> InputError:
        stored = self.connection.execute(select(*[getattr(Run, f) for f in STATIC_FIELDS]).where(Run.id == run_id)).one()
        static = dict(zip(STATIC_FIELDS, stored))
        if run.tokens is None:
            static["tokens"] = None  # stored tokens were derived from checkpoints
        if batch_id == self.batch_id:
            return _conflict(run, static, "an earlier row of this import")
        return _conflict(run, static, "the run already in this project",
                         "give the run a new id, or delete the project's old copy before importing this one.")

    def _insert_runs(self, runs: list[_Merged]) -> dict[str, int]:
        if not runs:
            return {}
        rows = [{
            "project_id": self.project_id, "name": m.first.name, "mixture": m.first.mixture,
            "model_params": m.first.model_params, "tokens": m.first.tokens, "seed": m.first.seed,
            "seq_len": m.first.seq_len, "tokenizer": m.first.tokenizer, "framework": m.first.framework,
            "source_file": m.first.source.display, "provenance": _jsonable(m.first.provenance),
            "method": m.first.method, "schedule": None, "status": "complete", "content_hash": m.content_hash,
            "batch_id": self.batch_id,
        } for m in runs]
        result = self.connection.execute(insert(Run).returning(Run.id, Run.name), rows)
        return {name: run_id for run_id, name in result}

    def _new_measurements(self, merged: dict[str, _Merged], run_ids: dict[str, int],
                          existing: dict[str, tuple]) -> list[tuple]:
        stored = self._stored_measurements(merged, run_ids, existing)
        target_ids = self.target_ids
        rows: list[tuple] = []
        for name, m in merged.items():
            run_id = run_ids[name]
            if name not in existing:
                rows.extend([(run_id, target_ids[t], k, v) for (t, k), v in m.measurements.items()])
                continue
            before = len(rows)
            for (target, tokens), value in m.measurements.items():
                target_id = target_ids[target]
                old = stored.get((run_id, target_id, tokens))
                if old is None:
                    rows.append((run_id, target_id, tokens, value))
                elif old != value:
                    at = "the end of the run" if tokens is None else f"{tokens} tokens"
                    raise InputError(
                        f"run '{name}' already has {old!r} for '{target}' at {at}; this file says {value!r}.",
                        file=m.first.source.display, row=m.first.line, column=m.first.source.column_of_target(target),
                        hint="give the run a new id, or delete the project's old copy first.")
                else:
                    self.counts.measurements_unchanged += 1
            if len(rows) > before and name in existing and existing[name][2] != self.batch_id:
                self.counts.runs_extended += 1
        return rows

    def _stored_measurements(self, merged: dict[str, _Merged], run_ids: dict[str, int],
                             existing: dict[str, tuple]) -> dict[tuple, float]:
        """Stored values of runs this chunk continues, limited to the checkpoints this chunk reports."""
        if not existing:
            return {}
        ids = [run_ids[name] for name in existing]
        tokens = {t for name in existing for (_, t) in merged[name].measurements}
        stored: dict[tuple, float] = {}
        query = select(Measurement.run_id, Measurement.target_id, Measurement.tokens_seen, Measurement.value)
        for start in range(0, len(ids), LOOKUP_BATCH):
            part = query.where(Measurement.run_id.in_(ids[start:start + LOOKUP_BATCH]))
            known = sorted(t for t in tokens if t is not None)
            if None in tokens and known:
                part = part.where(Measurement.tokens_seen.in_(known) | Measurement.tokens_seen.is_(None))
            elif None in tokens:
                part = part.where(Measurement.tokens_seen.is_(None))
            elif len(known) <= LOOKUP_BATCH:
                part = part.where(Measurement.tokens_seen.in_(known))
            stored.update({(r, t, k): v for r, t, k, v in self.connection.execute(part)})
        return stored

    def finish(self) -> None:
        """Runs whose files gave no total tokens take the largest checkpoint they report."""
        latest = (select(Measurement.tokens_seen).where(Measurement.run_id == Run.id)
                  .order_by(Measurement.tokens_seen.desc()).limit(1).scalar_subquery())
        self.connection.execute(
            update(Run).where(Run.batch_id == self.batch_id, Run.tokens.is_(None)).values(tokens=latest)
            .execution_options(synchronize_session=False))

    # -- domain metadata -----------------------------------------------------------------------------------

    def apply_metadata(self, entries: list[DomainMetadata]) -> None:
        seen: dict[str, DomainMetadata] = {}
        for entry in entries:
            if entry.name in seen and seen[entry.name] != entry:
                first = seen[entry.name]
                raise InputError(f"domain '{entry.name}' is described twice (first at line {first.line}).",
                                 file=entry.source.display if entry.source else None, row=entry.line, column="domain",
                                 hint="keep one entry per domain.")
            seen[entry.name] = entry
        self.ensure_domains(seen)
        stored = {name: (unique, tags, path) for name, unique, tags, path in self.connection.execute(
            select(Domain.name, Domain.unique_tokens, Domain.tags, Domain.data_path)
            .where(Domain.project_id == self.project_id))}
        changes = []
        for name, entry in seen.items():
            unique, tags, path = stored[name]
            new_tags = {**(tags if isinstance(tags, dict) else {}), **_jsonable(entry.tags)}
            new = (entry.unique_tokens if entry.unique_tokens is not None else unique, new_tags,
                   entry.data_path if entry.data_path is not None else path)
            self.counts.domains[name] = None
            if new != (unique, tags, path):
                changes.append({"b_id": self.domain_ids[name], "unique_tokens": new[0], "tags": new[1], "data_path": new[2]})
        if changes:
            self.connection.execute(
                update(Domain.__table__).where(Domain.__table__.c.id == bindparam("b_id"))
                .values(unique_tokens=bindparam("unique_tokens"), tags=bindparam("tags"), data_path=bindparam("data_path")),
                changes)
        self.counts.metadata_changed += len(changes)


def _conflict(run: ParsedRun, other: dict[str, Any], where: str,
              hint: str = "each run id must describe one run; rename one of them or fix the row.") -> InputError:
    """The rejection for one run id with two different contents; names the first field that differs."""
    mine = run.static()
    column, detail = "mixture", ""
    for key in STATIC_FIELDS:
        if mine[key] == other.get(key):
            continue
        if key == "mixture":
            a, b = other.get("mixture") or {}, mine["mixture"]
            domain = next((d for d in list(b) + list(a) if a.get(d) != b.get(d)), None)
            if domain is not None:
                column = run.source.column_of_domain(domain)
                detail = f": share of '{domain}' is {b.get(domain, 0.0):.6g} here, {a.get(domain, 0.0):.6g} in {where}"
        else:
            column, detail = key, f": {key} is {mine[key]!r} here, {other.get(key)!r} in {where}"
        break
    return InputError(f"run '{run.name}' appears again with different content{detail}.",
                      file=run.source.display, row=run.line, column=column, hint=hint)


def _jsonable(value: Any) -> Any:
    """Provenance as plain JSON: NaN/infinity and unknown types become text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
