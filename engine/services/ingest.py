"""Import run logs into a project: detect the format, validate, stage a chunk at a time, publish at once.

Formats (see the README): the RegMix pair, the Olmix swarm pair, tidy CSV,
JSONL, and domain metadata (CSV or YAML). Either every file lands whole or
nothing changes. Importing the same content again adds nothing and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from engine.actions import record_action
from engine.errors import InputError
from engine.ingest.detect import Sniffed, check_size, first_data_row, olmix_half, sha256_file, sniff
from engine.ingest.metadata import parse_tags, read_metadata_csv, read_metadata_yaml
from engine.ingest.pairs import PairReader, olmix_half as olmix_layout, regmix_halves
from engine.ingest.readers import JsonlReader, TidyCsvReader
from engine.ingest.table import ColumnRoles, DomainMetadata, Notes, ParsedRun, SourceFile
from engine.ingest.validate import Where, check_name, parse_optional_count
from engine.ingest.writer import BatchWriter
from engine.services.projects import validate_project_name
from engine.store import Domain, IngestBatch, Project, get_engine
from engine.store.queries import find_project, project_or_none
from engine.store.session import retry_write, store_error
from engine.store.staging import drop_stage, heartbeat, open_stage, purge_dead_stages

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What an import did; ``summary()`` is the one line the CLI and the Upload page show."""

    project: str
    format: str
    files: list[str]
    runs_added: int = 0
    runs_unchanged: int = 0
    domains: int = 0
    targets: int = 0
    measurements_added: int = 0
    notes: list[str] = field(default_factory=list)
    already_imported: bool = False
    domain_names: list[str] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)
    measurements_unchanged: int = 0

    def summary(self) -> str:
        files = ", ".join(self.files)
        if self.already_imported:
            return (f"{files}: already imported into '{self.project}' - nothing added "
                    f"({self.runs_unchanged} runs already there).")
        return (f"{files} ({self.format}) -> '{self.project}': {self.runs_added} runs added, "
                f"{self.runs_unchanged} unchanged, {self.domains} domains, {self.targets} targets, "
                f"{self.measurements_added} measurements added.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Reader(Protocol):
    def chunks(self) -> Iterator[list[ParsedRun]]: ...
    def direction(self, target: str) -> str: ...
    def declared(self) -> tuple[list[str], list[str]]: ...


@dataclass
class _ImportPlan:
    format: str
    readers: list[_Reader]
    metadata: list[DomainMetadata]
    sources: list[SourceFile]


def _plan(sources: list[SourceFile], roles: ColumnRoles, notes: Notes) -> _ImportPlan:
    """Group the files into readers: pairs are recognised by their headers (and, for Olmix, names or content)."""
    sniffed = [sniff(s) for s in sources]
    by_kind: dict[str, list[Sniffed]] = {}
    for item in sniffed:
        kind = item.kind
        if kind == "olmix":
            kind = olmix_half(item, first_data_row(item.source))
        item.source.kind = kind
        by_kind.setdefault(kind, []).append(item)

    readers: list[_Reader] = []
    formats: list[str] = []
    for item in by_kind.get("tidy-csv", []):
        readers.append(TidyCsvReader(item.source, item.header, roles, notes))
        formats.append("tidy-csv")
    for item in by_kind.get("jsonl", []):
        readers.append(JsonlReader(item.source, roles, notes))
        formats.append("jsonl")
    mixtures, losses = by_kind.get("regmix-mixture", []), by_kind.get("regmix-loss", [])
    if mixtures or losses:
        _check_pair(mixtures, losses, "RegMix", "mixture file (index, train_* shares)", "loss file (index, metric/*_val_loss)")
        mix, loss = regmix_halves(mixtures[0].source, mixtures[0].header, losses[0].source, losses[0].header)
        readers.append(PairReader("regmix-pair", mix, loss, notes))
        formats.append("regmix-pair")
    ratios, metrics = by_kind.get("olmix-ratios", []), by_kind.get("olmix-metrics", [])
    if ratios or metrics:
        _check_pair(ratios, metrics, "Olmix swarm", "ratios file", "metrics file")
        readers.append(PairReader("olmix-pair", olmix_layout(ratios[0].source, ratios[0].header),
                                  olmix_layout(metrics[0].source, metrics[0].header), notes))
        formats.append("olmix-pair")
    metadata: list[DomainMetadata] = []
    for item in by_kind.get("domain-metadata-csv", []):
        metadata.extend(read_metadata_csv(item.source, item.header))
        formats.append("domain-metadata")
    for item in by_kind.get("domain-metadata-yaml", []):
        metadata.extend(read_metadata_yaml(item.source))
        formats.append("domain-metadata")
    return _ImportPlan("+".join(dict.fromkeys(formats)), readers, metadata, sources)


def _check_pair(first: list[Sniffed], second: list[Sniffed], name: str, first_what: str, second_what: str) -> None:
    if len(first) == 1 and len(second) == 1:
        return
    if not first or not second:
        have, missing = (first or second)[0], (second_what if not second else first_what)
        raise InputError(f"this is one half of a {name} pair; its {missing} is missing.", file=have.source.display,
                         row=1, hint=f"give both files of the pair in the same import (the {first_what} and the {second_what}).")
    extra = (first if len(first) > 1 else second)[1]
    raise InputError(f"more than one {name} pair was given in one import.", file=extra.source.display, row=1,
                     hint="import one pair at a time.")


def _batch_hash(sources: list[SourceFile], roles: ColumnRoles) -> str:
    digests = sorted(sha256_file(s.path) for s in sources)
    return hashlib.sha256(json.dumps([digests, roles.as_dict()]).encode()).hexdigest()


def ingest_files(
    project: str,
    paths: list[str | Path],
    *,
    url: str | None = None,
    create: bool = True,
    roles: ColumnRoles | None = None,
    display_names: dict[str, str] | None = None,
) -> IngestReport:
    """Import ``paths`` into ``project``: all or nothing, as readers see it.

    The rows are staged a committed chunk at a time (another writer never waits long for the lock) and published
    in one short transaction. ``display_names`` maps a path to the name the user knows (uploads), so messages name
    the user's file. Raises InputError (file, line, column, fix) on any problem; readers then see no change.
    """
    project = validate_project_name(project)
    if not paths:
        raise InputError("no files given.", hint="give the log files to import.")
    roles = roles or ColumnRoles()
    names = display_names or {}
    sources = [SourceFile(path=str(p), display=names.get(str(p), Path(p).name)) for p in paths]
    engine = get_engine(url)

    def attempt() -> IngestReport:
        # Each try reads the files again: a retry after a concurrent writer starts from what it committed.
        notes = Notes()
        plan = _plan(sources, roles, notes)
        batch_hash = _batch_hash(sources, roles)
        with engine.connect() as connection:
            purge_dead_stages(connection)
            earlier = _already_imported(connection, project, plan, batch_hash, create)
            if earlier is not None:
                return earlier
            stage_id = open_stage(connection, project)
            try:
                return _import(connection, stage_id, project, plan, batch_hash, notes)
            finally:
                drop_stage(connection, stage_id)

    try:
        return retry_write(attempt)
    except DBAPIError as exc:
        raise store_error(exc, f"the import into '{project}' failed; nothing was changed") from exc


def _already_imported(connection: Connection, project: str, plan: _ImportPlan, batch_hash: str,
                      create: bool) -> IngestReport | None:
    """The report of an import whose content is already stored; None when there is something to do."""
    session = Session(bind=connection)
    try:
        project_row = find_project(session, project) if not create else project_or_none(session, project)
        earlier = None if project_row is None else session.scalar(
            select(IngestBatch).where(IngestBatch.project_id == project_row.id, IngestBatch.content_hash == batch_hash))
        if earlier is None:
            return None
        counts = earlier.counts or {}
        return IngestReport(project, plan.format, [s.display for s in plan.sources],
                            runs_unchanged=counts.get("runs_added", 0), domains=counts.get("domains", 0),
                            targets=counts.get("targets", 0), already_imported=True,
                            notes=[f"the same content was imported on {earlier.created_at:%Y-%m-%d %H:%M} UTC "
                                   f"(import #{earlier.id}); nothing was added."])
    finally:
        session.close()
        connection.rollback()


def _import(connection: Connection, stage_id: int, project: str, plan: _ImportPlan, batch_hash: str,
            notes: Notes) -> IngestReport:
    files = [s.display for s in plan.sources]
    project_id = connection.scalar(select(Project.id).where(Project.name == project))
    writer = BatchWriter(connection, project_id, stage_id)
    for reader in plan.readers:
        domains, targets = reader.declared()
        writer.ensure_domains(domains)
        writer.ensure_targets(targets, reader.direction)
        for chunk in reader.chunks():
            writer.write_chunk(chunk, reader.direction)
            heartbeat(connection, stage_id)
            connection.commit()  # one chunk: the write lock is held this long, not for the whole file
    writer.finish()
    connection.commit()
    metadata = _known_domains(plan.metadata, writer.domain_ids)
    # The final transaction: the project, its batch, the new domains and targets, and every staged row at once.
    session = Session(bind=connection, expire_on_commit=False)
    try:
        project_row = project_or_none(session, project)
        if project_row is None:
            project_row = Project(name=project, description="")
            session.add(project_row)
            session.flush()
        batch = IngestBatch(project_id=project_row.id, content_hash=batch_hash, files=files, format=plan.format,
                            counts={}, notes=[])
        session.add(batch)
        session.flush()
        writer.publish(project_row.id, batch.id)
        writer.apply_metadata(metadata)
        counts = writer.counts
        for name in writer.direction_notes:
            notes.add(f"target '{name}' keeps its stored direction ({writer.target_directions[name]} is better).",
                      "direction")
        if counts.runs_extended:
            notes.add(f"{counts.runs_extended} runs already in the project gained new measurements.", "extended")
        report = IngestReport(
            project=project, format=plan.format, files=files, runs_added=counts.runs_added,
            runs_unchanged=counts.runs_unchanged, domains=len(counts.domains), targets=len(counts.targets),
            measurements_added=counts.measurements_added, domain_names=list(counts.domains),
            target_names=list(counts.targets), measurements_unchanged=counts.measurements_unchanged,
        )
        if not (counts.runs_added or counts.measurements_added or counts.metadata_changed):
            report.already_imported = True
            notes.add("every run, measurement and domain fact in these files is already in the project; nothing was added.")
            report.notes = notes.as_list()
            session.rollback()
            return report
        report.notes = notes.as_list()
        batch.counts = {"runs_added": report.runs_added, "runs_unchanged": report.runs_unchanged,
                        "domains": report.domains, "targets": report.targets,
                        "measurements_added": report.measurements_added, "metadata_changed": counts.metadata_changed}
        batch.notes = report.notes
        record_action(session, "upload", project, {"files": files, "format": plan.format, "batch": batch.id,
                                                    "runs_added": report.runs_added})
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    log.info("%s", report.summary())
    return report


def _known_domains(entries: list[DomainMetadata], domain_ids: dict[str, int]) -> list[DomainMetadata]:
    """Metadata may only describe domains the project's runs use: a typo must not add a phantom domain."""
    for entry in entries:
        if entry.name not in domain_ids:
            known = ", ".join(sorted(domain_ids)) or "none yet"
            raise InputError(
                f"the project has no domain '{entry.name}' (its domains: {known}).",
                file=entry.source.display if entry.source else None, row=entry.line, column="domain",
                hint="import the runs first (or in the same import), and spell the domain as `mixplan domains` lists it.")
    return entries


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def ingest_uploads(project: str, uploads: list[tuple[str, bytes]], *, url: str | None = None,
                   roles: ColumnRoles | None = None) -> IngestReport:
    """Import uploaded files (name as the user's browser gave it, bytes) - the dashboard's door to ingest."""
    if not uploads:
        raise InputError("no files were uploaded.", hint="choose the log files to upload.")
    with tempfile.TemporaryDirectory(prefix="mixplan-upload-") as folder:
        paths, names = [], {}
        for i, (name, data) in enumerate(uploads):
            shown = Path(name or f"upload-{i}").name or f"upload-{i}"
            check_size(len(data), shown)
            path = Path(folder) / f"{i}-{_SAFE_NAME.sub('_', shown)}"
            path.write_bytes(data)
            paths.append(path)
            names[str(path)] = shown
        return ingest_files(project, paths, url=url, roles=roles, display_names=names)


def set_domain_metadata(
    project: str,
    domain: str,
    *,
    unique_tokens: int | str | None = None,
    tags: dict[str, Any] | list[str] | None = None,
    data_path: str | None = None,
    url: str | None = None,
) -> None:
    """Set a domain's unique tokens (``1.2B`` allowed), merge tags (``{"license": "cc-by"}`` or ``["license=cc-by"]``), set its data path."""
    where = Where(None, None, None)
    domain = check_name(domain, where, "domain")
    unique = parse_optional_count(unique_tokens, Where(None, None, "unique_tokens"), "a token count")
    if isinstance(tags, list):
        parsed: dict[str, Any] = {}
        for text in tags:
            parsed.update(parse_tags(text, Where(None, None, "tag")))
        tags = parsed
    session = Session(get_engine(url))
    try:
        with session.begin():
            project_row = find_project(session, project)
            row = session.scalar(select(Domain).where(Domain.project_id == project_row.id, Domain.name == domain))
            if row is None:
                known = session.scalars(select(Domain.name).where(Domain.project_id == project_row.id).order_by(Domain.name)).all()
                raise InputError(f"project '{project}' has no domain '{domain}'.",
                                 hint=f"use one of: {', '.join(known)}." if known else "import the project's runs first.")
            if unique is not None:
                row.unique_tokens = unique
            if tags:
                row.tags = {**(row.tags if isinstance(row.tags, dict) else {}), **tags}
            if data_path is not None:
                row.data_path = data_path or None
    finally:
        session.close()


__all__ = ["ColumnRoles", "IngestReport", "ingest_files", "ingest_uploads", "set_domain_metadata"]
