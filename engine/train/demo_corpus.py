"""A multi-domain demo corpus from text every Python installation has.

- ``code``:  standard-library ``.py`` sources (one document a module), the largest domain;
- ``prose``: the interpreter's reference topics (``pydoc_data.topics``) and module
  docstrings, about an order of magnitude smaller;
- ``legal``: licence texts (Python's own ``LICENSE.txt`` and those shipped in installed
  packages' ``*.dist-info``), de-duplicated, another order of magnitude smaller.

The sizes differ on purpose: at a few hundred thousand tokens of training the
legal domain is read several times over, so repetition shows in the sweep.
Output is one ``<domain>.jsonl`` file a domain (``{"text": ...}`` a line), ready
for ``mixplan prepare-data``. Content depends on the installation; the caps
and sorted file order make it deterministic for a given one.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CAPS = {"code": 4_000_000, "prose": 400_000, "legal": 40_000}  # bytes a domain
# Domain tags recorded with the prepared data (the planner can exclude domains by tag).
DEMO_TAGS = {
    "code": {"kind": "code", "license": "PSF-2.0"},
    "prose": {"kind": "prose", "license": "PSF-2.0"},
    "legal": {"kind": "legal", "license": "mixed"},
}


@dataclass(frozen=True)
class DemoCorpus:
    root: Path
    files: dict[str, Path]
    documents: dict[str, int]
    bytes: dict[str, int]


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _code_documents() -> list[str]:
    root = _stdlib()
    skip = ("site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__")
    files = sorted(p for p in root.rglob("*.py") if not set(p.relative_to(root).parts) & set(skip))
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


def _prose_documents() -> list[str]:
    documents: list[str] = []
    try:
        from pydoc_data.topics import topics

        documents += [topics[name] for name in sorted(topics)]
    except ImportError:  # some distributions strip pydoc_data
        log.warning("pydoc_data is not available; prose comes from docstrings only")
    root = _stdlib()
    for path in sorted(root.glob("*.py")):
        try:
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8", errors="replace")))
        except SyntaxError:
            continue
        if docstring and len(docstring) > 200:
            documents.append(docstring)
    return documents


def _legal_documents() -> list[str]:
    candidates = [_stdlib() / "LICENSE.txt"]
    for folder in [*site.getsitepackages(), site.getusersitepackages()]:
        for pattern in ("*.dist-info/**/LICEN[CS]E*", "*.dist-info/**/COPYING*"):
            candidates += sorted(Path(folder).glob(pattern))
    seen: set[str] = set()
    documents = []
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        digest = hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
        if text and digest not in seen:  # the same Apache/MIT text ships with many packages
            seen.add(digest)
            documents.append(text)
    return documents


def _capped(documents: list[str], cap_bytes: int) -> list[str]:
    kept, total = [], 0
    for doc in documents:
        size = len(doc.encode("utf-8"))
        if total + size > cap_bytes and len(kept) >= 2:
            break
        kept.append(doc)
        total += size
    return kept


def build_demo_corpus(out: str | Path, caps: dict[str, int] | None = None) -> DemoCorpus:
    """Write ``code.jsonl``, ``prose.jsonl`` and ``legal.jsonl`` under ``out``."""
    caps = {**DEFAULT_CAPS, **(caps or {})}
    root = Path(out).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    sources = {"code": _code_documents, "prose": _prose_documents, "legal": _legal_documents}
    files, documents, sizes = {}, {}, {}
    for name, collect in sources.items():
        docs = _capped(collect(), caps[name])
        path = root / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for doc in docs:
                handle.write(json.dumps({"text": doc}) + "\n")
        files[name], documents[name] = path, len(docs)
        sizes[name] = sum(len(d.encode("utf-8")) for d in docs)
        log.info("demo corpus %s: %d documents, %d bytes", name, len(docs), sizes[name])
    if documents["legal"] < 2:
        log.warning("only %d licence text found (Python %s); the legal domain is tiny", documents["legal"], sys.version)
    return DemoCorpus(root, files, documents, sizes)
