"""Stage parsed runs, one committed chunk at a time, then publish them into the store in one short transaction.

Per chunk: merge the fragments of each run and check they agree; note missing
domains and targets; look up which runs the project (or this import's earlier
chunks) already has; stage new runs (Core executemany with RETURNING for their
ids) and the measurements that are new. Measurements are the bulk (runs x
targets x checkpoints), so they go through the driver directly: ``executemany``
of plain tuples on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL (psycopg 3).
The caller commits after each chunk: no transaction holds SQLite's write lock
for longer than a chunk. :meth:`BatchWriter.publish` then creates the domains
and targets and moves the staged rows into ``run`` and ``measurement`` with two
``INSERT ... SELECT`` statements, in the transaction that adds the import's
batch row: readers see the whole import or none of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, and_, bindparam, func, insert, literal, select, update
from sqlalchemy.orm import aliased

from engine.errors import InputError
from engine.ingest.table import STATIC_FIELDS, DomainMetadata, ParsedRun
from engine.store.models import Domain, EvalTarget, Measurement, Run, StagedMeasurement, StagedRun

log = logging.getLogger(__name__)

LOOKUP_BATCH = 500  # names per IN (...) query, well under every driver's parameter limit
MEASUREMENT_COLUMNS = ("run_id", "target_id", "tokens_seen", "value")
STAGED_MEASUREMENT_COLUMNS = ("stage_id", "staged_run_id", "run_id", "target", "tokens_seen", "value")
RUN_COPY_COLUMNS = ("name", "mixture", "model_params", "tokens", "seed", "seq_len", "tokenizer", "framework",
                    "source_file", "provenance", "method", "content_hash")


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


def insert_measurement_rows(connection: Connection, rows: list[tuple], table: str = "measurement",
                            columns: tuple[str, ...] = MEASUREMENT_COLUMNS) -> None:
    """Bulk-insert tuples of ``columns`` into ``table`` with the driver's fastest path."""
    if not rows:
        return
    driver = connection.connection.driver_connection
    if connection.dialect.name == "postgresql" and hasattr(driver, "cursor"):
        with driver.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    if connection.dialect.name == "sqlite":
        cursor = driver.cursor()
        try:
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                               rows)
        finally:
            cursor.close()
        return
    model = {"measurement": Measurement, "staged_measurement": StagedMeasurement}[table]
    connection.execute(insert(model), [dict(zip(columns, row)) for row in rows])


@dataclass
class _Merged:
    first: ParsedRun
    content_hash: str
    measurements: dict[tuple[str, int | None], float]


# A run this import meets: ("run", id) when stored by an earlier import, ("staged", id) when staged by this one.
RunRef = tuple[str, int]


class BatchWriter:
    """Stages one import into one project (``project_id`` None: the project does not exist yet).

    Every call runs in the caller's current transaction on ``connection``; the caller commits between chunks.
    """

    def __init__(self, connection: Connection, project_id: int | None, stage_id: int) -> None:
        self.connection = connection
        self.project_id = project_id
        self.stage_id = stage_id
        self.counts = WriteCounts()
        self.domain_ids: dict[str, int | None] = {}  # None: created when the import is published
        self.target_ids: dict[str, int | None] = {}
        self.target_directions: dict[str, str] = {}
        if project_id is not None:
            self.domain_ids.update(connection.execute(
                select(Domain.name, Domain.id).where(Domain.project_id == project_id)).all())
            for name, target_id, direction in connection.execute(
                    select(EvalTarget.name, EvalTarget.id, EvalTarget.direction).where(EvalTarget.project_id == project_id)):
                self.target_ids[name] = target_id
                self.target_directions[name] = direction
        self._earlier_runs_seen: set[int] = set()  # runs of earlier imports touched (grows only on re-imports)
        self.direction_notes: list[str] = []

    # -- names ---------------------------------------------------------------------------------------------

    def ensure_domains(self, names: Iterable[str]) -> None:
        for name in names:
            self.domain_ids.setdefault(name, None)

    def ensure_targets(self, names: Iterable[str], direction: Callable[[str], str]) -> None:
        for name in dict.fromkeys(names):
            wanted = direction(name)
            if name not in self.target_ids:
                self.target_ids[name] = None
                self.target_directions[name] = wanted
            elif self.target_directions.get(name) != wanted and name not in self.direction_notes:
                self.direction_notes.append(name)

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
        run_refs = {name: row[0] for name, row in existing.items()}
        for name, (ref, stored_hash) in existing.items():
            m = merged[name]
            if stored_hash != m.content_hash:
                raise self._conflict_with_stored(m.first, ref)
            if ref[0] == "run" and ref[1] not in self._earlier_runs_seen:
                self._earlier_runs_seen.add(ref[1])
                self.counts.runs_unchanged += 1
        run_refs.update(self._stage_runs([merged[n] for n in new_names]))
        self.counts.runs_added += len(new_names)
        rows = self._new_measurements(merged, run_refs, existing)
        insert_measurement_rows(self.connection, rows, "staged_measurement", STAGED_MEASUREMENT_COLUMNS)
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

    def _existing_runs(self, names: list[str]) -> dict[str, tuple[RunRef, str]]:
        """Runs of these names stored in the project, or staged by an earlier chunk of this import."""
        found: dict[str, tuple[RunRef, str]] = {}
        for start in range(0, len(names), LOOKUP_BATCH):
            part = names[start:start + LOOKUP_BATCH]
            if self.project_id is not None:
                rows = self.connection.execute(select(Run.name, Run.id, Run.content_hash)
                                               .where(Run.project_id == self.project_id, Run.name.in_(part)))
                found.update({name: (("run", run_id), h) for name, run_id, h in rows})
            rows = self.connection.execute(select(StagedRun.name, StagedRun.id, StagedRun.content_hash)
                                           .where(StagedRun.stage_id == self.stage_id, StagedRun.name.in_(part)))
            found.update({name: (("staged", run_id), h) for name, run_id, h in rows})
        return found

    def _conflict_with_stored(self, run: ParsedRun, ref: RunRef) -> InputError:
        model = Run if ref[0] == "run" else StagedRun
        stored = self.connection.execute(select(*[getattr(model, f) for f in STATIC_FIELDS]).where(model.id == ref[1])).one()
        static = dict(zip(STATIC_FIELDS, stored))
        if run.tokens is None:
            static["tokens"] = None  # stored tokens were derived from checkpoints
        if ref[0] == "staged":
            return _conflict(run, static, "an earlier row of this import")
        return _conflict(run, static, "the run already in this project",
                         "give the run a new id, or delete the project's old copy before importing this one.")

    def _stage_runs(self, runs: list[_Merged]) -> dict[str, RunRef]:
        if not runs:
            return {}
        rows = [{
            "stage_id": self.stage_id, "name": m.first.name, "mixture": m.first.mixture,
            "model_params": m.first.model_params, "tokens": m.first.tokens, "seed": m.first.seed,
            "seq_len": m.first.seq_len, "tokenizer": m.first.tokenizer, "framework": m.first.framework,
            "source_file": m.first.source.display, "provenance": _jsonable(m.first.provenance),
            "method": m.first.method, "content_hash": m.content_hash,
        } for m in runs]
        result = self.connection.execute(insert(StagedRun).returning(StagedRun.id, StagedRun.name), rows)
        return {name: ("staged", run_id) for run_id, name in result}

    def _new_measurements(self, merged: dict[str, _Merged], run_refs: dict[str, RunRef],
                          existing: dict[str, tuple]) -> list[tuple]:
        stored = self._stored_measurements(merged, run_refs, existing)
        rows: list[tuple] = []
        stage = self.stage_id
        for name, m in merged.items():
            kind, run_id = ref = run_refs[name]
            staged_id, stored_id = (run_id, None) if kind == "staged" else (None, run_id)
            if name not in existing:
                rows.extend([(stage, staged_id, stored_id, t, k, v) for (t, k), v in m.measurements.items()])
                continue
            before = len(rows)
            for (target, tokens), value in m.measurements.items():
                old = stored.get((ref, target, tokens))
                if old is None:
                    rows.append((stage, staged_id, stored_id, target, tokens, value))
                elif old != value:
                    at = "the end of the run" if tokens is None else f"{tokens} tokens"
                    raise InputError(
                        f"run '{name}' already has {old!r} for '{target}' at {at}; this file says {value!r}.",
                        file=m.first.source.display, row=m.first.line, column=m.first.source.column_of_target(target),
                        hint="give the run a new id, or delete the project's old copy first.")
                else:
                    self.counts.measurements_unchanged += 1
            if len(rows) > before and kind == "run":
                self.counts.runs_extended += 1
        return rows

    def _stored_measurements(self, merged: dict[str, _Merged], run_refs: dict[str, RunRef],
                             existing: dict[str, tuple]) -> dict[tuple, float]:
        """Stored and staged values of runs this chunk continues, limited to the checkpoints this chunk reports."""
        if not existing:
            return {}
        tokens = {t for name in existing for (_, t) in merged[name].measurements}
        known = sorted(t for t in tokens if t is not None)
        stored: dict[tuple, float] = {}
        target_names = {target_id: name for name, target_id in self.target_ids.items() if target_id is not None}

        def at_tokens(query, column):
            if None in tokens and known:
                return query.where(column.in_(known) | column.is_(None))
            if None in tokens:
                return query.where(column.is_(None))
            return query.where(column.in_(known)) if len(known) <= LOOKUP_BATCH else query

        for kind in ("run", "staged"):
            ids = [run_refs[name][1] for name in existing if run_refs[name][0] == kind]
            for start in range(0, len(ids), LOOKUP_BATCH):
                part = ids[start:start + LOOKUP_BATCH]
                if kind == "run":
                    query = at_tokens(select(Measurement.run_id, Measurement.target_id, Measurement.tokens_seen,
                                             Measurement.value).where(Measurement.run_id.in_(part)),
                                      Measurement.tokens_seen)
                    # A target another import created since this one started is not among ours: a clash with it
                    # breaks a unique key at publish, and the import is retried from the committed state.
                    stored.update({(("run", r), target_names[t], k): v for r, t, k, v in self.connection.execute(query)
                                   if t in target_names})
                    run_column = StagedMeasurement.run_id
                else:
                    run_column = StagedMeasurement.staged_run_id
                query = at_tokens(select(run_column, StagedMeasurement.target, StagedMeasurement.tokens_seen,
                                         StagedMeasurement.value)
                                  .where(StagedMeasurement.stage_id == self.stage_id, run_column.in_(part)),
                                  StagedMeasurement.tokens_seen)
                stored.update({((kind, r), t, k): v for r, t, k, v in self.connection.execute(query)})
        return stored

    def finish(self) -> None:
        """Runs whose files gave no total tokens take the largest checkpoint they report."""
        latest = (select(func.max(StagedMeasurement.tokens_seen))
                  .where(StagedMeasurement.stage_id == self.stage_id, StagedMeasurement.staged_run_id == StagedRun.id)
                  .scalar_subquery())  # stage_id first: the index is (stage_id, staged_run_id)
        self.connection.execute(
            update(StagedRun).where(StagedRun.stage_id == self.stage_id, StagedRun.tokens.is_(None))
            .values(tokens=latest).execution_options(synchronize_session=False))

    # -- the final transaction -----------------------------------------------------------------------------

    def publish(self, project_id: int, batch_id: int) -> None:
        """Create the new domains and targets, then move the staged runs and measurements into the project.

        Runs in the caller's final transaction. A run or measurement another import stored since it was staged
        breaks a unique key here, and the whole import is retried from the committed state.
        """
        self.project_id = project_id
        stored = dict(self.connection.execute(select(Domain.name, Domain.id).where(Domain.project_id == project_id)).all())
        missing = [{"project_id": project_id, "name": n, "tags": {}, "unique_tokens": None, "data_path": None}
                   for n in self.domain_ids if n not in stored]
        if missing:
            stored.update({name: row_id for row_id, name in
                           self.connection.execute(insert(Domain).returning(Domain.id, Domain.name), missing)})
        self.domain_ids = {name: stored[name] for name in self.domain_ids}
        stored = dict(self.connection.execute(
            select(EvalTarget.name, EvalTarget.id).where(EvalTarget.project_id == project_id)).all())
        missing = [{"project_id": project_id, "name": n, "direction": self.target_directions[n], "unit": ""}
                   for n in self.target_ids if n not in stored]
        if missing:
            stored.update({name: row_id for row_id, name in
                           self.connection.execute(insert(EvalTarget).returning(EvalTarget.id, EvalTarget.name), missing)})
        self.target_ids = {name: stored[name] for name in self.target_ids}

        runs = select(literal(project_id), *[getattr(StagedRun, c) for c in RUN_COPY_COLUMNS], literal("complete"),
                      literal(batch_id)).where(StagedRun.stage_id == self.stage_id).order_by(StagedRun.id)
        self.connection.execute(insert(Run).from_select(
            ["project_id", *RUN_COPY_COLUMNS, "status", "batch_id"], runs))
        staged = aliased(StagedRun)
        new_run = aliased(Run)
        measurements = (
            select(func.coalesce(StagedMeasurement.run_id, new_run.id), EvalTarget.id,
                   StagedMeasurement.tokens_seen, StagedMeasurement.value)
            .select_from(StagedMeasurement)
            .join(EvalTarget, and_(EvalTarget.project_id == project_id, EvalTarget.name == StagedMeasurement.target))
            .outerjoin(staged, staged.id == StagedMeasurement.staged_run_id)
            .outerjoin(new_run, and_(new_run.project_id == project_id, new_run.name == staged.name))
            .where(StagedMeasurement.stage_id == self.stage_id))
        self.connection.execute(insert(Measurement).from_select(list(MEASUREMENT_COLUMNS), measurements))

    # -- domain metadata -----------------------------------------------------------------------------------

    def apply_metadata(self, entries: list[DomainMetadata]) -> None:
        """Set the domains' facts; runs in the final transaction, after :meth:`publish` created the domains."""
        seen: dict[str, DomainMetadata] = {}
        for entry in entries:
            if entry.name in seen and seen[entry.name] != entry:
                first = seen[entry.name]
                raise InputError(f"domain '{entry.name}' is described twice (first at line {first.line}).",
                                 file=entry.source.display if entry.source else None, row=entry.line, column="domain",
                                 hint="keep one entry per domain.")
            seen[entry.name] = entry
        stored = {name: (row_id, unique, tags, path) for name, row_id, unique, tags, path in self.connection.execute(
            select(Domain.name, Domain.id, Domain.unique_tokens, Domain.tags, Domain.data_path)
            .where(Domain.project_id == self.project_id))}
        changes = []
        for name, entry in seen.items():
            row_id, unique, tags, path = stored[name]
            new_tags = {**(tags if isinstance(tags, dict) else {}), **_jsonable(entry.tags)}
            new = (entry.unique_tokens if entry.unique_tokens is not None else unique, new_tags,
                   entry.data_path if entry.data_path is not None else path)
            self.counts.domains[name] = None
            if new != (unique, tags, path):
                changes.append({"b_id": row_id, "unique_tokens": new[0], "tags": new[1], "data_path": new[2]})
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
