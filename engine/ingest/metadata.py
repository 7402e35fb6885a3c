"""Domain metadata files: unique tokens, tags (licence, quality...) and data path per domain.

CSV: a ``domain`` column, optional ``unique_tokens``, ``data_path`` and ``tags``
(``key=value;key=value``); every other column becomes a tag (``license`` -> tags.license).

YAML::

    domains:
      pile_cc: {unique_tokens: 52B, tags: {license: mixed}, data_path: /data/pile_cc}
      github: {unique_tokens: 18e9, license: various}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.errors import InputError
from engine.ingest.detect import text_lines
from engine.ingest.readers import csv_rows, wrong_width
from engine.ingest.table import DomainMetadata, SourceFile
from engine.ingest.validate import Where, check_name, parse_optional_count, scalar

_KNOWN = {"domain", "name", "unique_tokens", "data_path", "tags"}


def parse_tags(text: str, where: Where) -> dict[str, Any]:
    """``license=cc-by;quality=high`` or ``noncommercial`` -> {"license": "cc-by", "quality": "high", "noncommercial": True}."""
    tags: dict[str, Any] = {}
    for part in text.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not key:
            raise where.error(f"the tag {part!r} has no name.", "write tags as key=value, separated by ';'.")
        tags[key] = scalar(value) if sep else True
    return tags


def read_metadata_csv(source: SourceFile, header: list[str]) -> list[DomainMetadata]:
    lowered = [h.strip().lower() for h in header]
    domain_pos = lowered.index("domain")
    out = []
    for line, row in csv_rows(source):
        if len(row) != len(header):
            raise wrong_width(source, line, len(row), len(header))
        cells = dict(zip(lowered, row))
        name = check_name(row[domain_pos], Where(source.display, line, header[domain_pos]), "domain")
        tags = {}
        if "tags" in cells:
            tags.update(parse_tags(cells["tags"], Where(source.display, line, header[lowered.index("tags")])))
        for pos, key in enumerate(lowered):
            if key not in _KNOWN and (value := scalar(row[pos])) is not None:
                tags[header[pos].strip()] = value
        unique = None
        if "unique_tokens" in cells:
            unique = parse_optional_count(cells["unique_tokens"],
                                          Where(source.display, line, header[lowered.index("unique_tokens")]), "a token count")
        out.append(DomainMetadata(name=name, source=source, line=line, unique_tokens=unique, tags=tags,
                                  data_path=(cells.get("data_path") or "").strip() or None))
    return out


MAX_YAML_BYTES = 256 << 10  # a metadata file lists domains: a thousand entries fit in ~100 KiB


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on a large file


def _refuse_aliases(text: str) -> None:
    """Aliases (``*name``) are refused before anything is built: a few hundred bytes of nested aliases
    ("billion laughs") would otherwise expand to gigabytes. Metadata files never need them."""
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, f"aliases (*{event.anchor}) are not allowed", event.start_mark)


def read_metadata_yaml(source: SourceFile) -> list[DomainMetadata]:
    if Path(source.path).stat().st_size > MAX_YAML_BYTES:
        raise InputError(f"the YAML file is larger than {MAX_YAML_BYTES >> 10} KiB; a domain metadata file is much smaller.",
                         file=source.display, hint="check that this is the metadata file (one entry per domain).")
    text = "".join(text_lines(source))
    try:
        # Nodes keep their line numbers, so messages can point at the entry.
        _refuse_aliases(text)
        loader = _LOADER(text)
        try:
            root = loader.get_single_node()
            doc = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}.", file=source.display,
                         row=mark.line + 1 if mark else None,
                         hint="write each domain's fields out in full (no anchors or aliases) and check the indentation.") from None
    except RecursionError:
        raise InputError("the YAML is nested too deeply.", file=source.display,
                         hint="a metadata file maps domains to {unique_tokens, tags, data_path}.") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of thousands of digits
        raise InputError(f"a value cannot be read: {str(exc)[:100]}.", file=source.display,
                         hint="write counts as plain numbers such as 52B or 5.2e10.") from None
    lines = _entry_lines(root)
    if isinstance(doc, dict) and "domains" in doc:
        doc = doc["domains"]
    entries: list[tuple[str, Any]]
    if isinstance(doc, dict):
        entries = list(doc.items())
    elif isinstance(doc, list) and all(isinstance(e, dict) for e in doc):
        entries = [(e.get("domain", e.get("name")), e) for e in doc]
    else:
        raise InputError("expected a mapping of domain name -> {unique_tokens, tags, data_path}.", file=source.display,
                         row=1, hint="see the README for the domain metadata format.")
    out = []
    for name, fields in entries:
        line = lines.get(str(name))
        where = Where(source.display, line, str(name))
        name = check_name(name, where, "domain")
        if fields is None:
            fields = {}
        if not isinstance(fields, dict):
            raise where.error("expected {unique_tokens, tags, data_path} for this domain.")
        tags = fields.get("tags") or {}
        if isinstance(tags, list):
            tags = {str(t): True for t in tags}
        if not isinstance(tags, dict):
            raise Where(source.display, line, "tags").error("expected tags as a mapping such as {license: cc-by}.")
        tags = dict(tags)
        tags.update({k: v for k, v in fields.items() if k not in _KNOWN})
        out.append(DomainMetadata(
            name=name, source=source, line=line,
            unique_tokens=parse_optional_count(fields.get("unique_tokens"), Where(source.display, line, "unique_tokens"),
                                               "a token count"),
            tags=tags, data_path=str(fields["data_path"]) if fields.get("data_path") else None,
        ))
    return out


def _entry_lines(root: Any) -> dict[str, int]:
    """Line of each domain entry (keys of the top mapping, or of its 'domains' mapping)."""
    if not isinstance(root, yaml.MappingNode):
        return {}
    pairs = root.value
    for key, value in pairs:
        if getattr(key, "value", None) == "domains" and isinstance(value, yaml.MappingNode):
            pairs = value.value
    return {str(key.value): key.start_mark.line + 1 for key, _ in pairs if isinstance(key, yaml.ScalarNode)}
