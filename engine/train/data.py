"""Data preparation: per-domain text -> token files, streamed in chunks.

Each domain is a list of sources (files, folders or globs) holding ``.jsonl`` files
(one document a line, in its ``text`` field) or ``.txt`` files (one document a
file; a file larger than ``max_document_bytes`` is split into documents at blank
lines, and a piece still larger is cut at a line end below that size).

Input is read ``chunk_bytes`` at a time and each chunk's tokens are appended to
``train.bin.part`` / ``val.bin.part``, so memory stays bounded by the chunk, not
the domain. Whether a document is held out for validation is decided by a seeded
hash of its bytes (``val_fraction`` of the hash space), so no document count is
needed up front and equal documents always land on the same side. If a domain
ends with no validation (or no training) document, its last document is moved
across, so both sides have at least one. Output, per domain::

    OUT/<domain>/train.bin   OUT/<domain>/val.bin   (uint8 for bytes, uint16 / uint32 by vocabulary size)
    OUT/manifest.json        tokenizer, dtype, per-domain counts and input fingerprints

After every chunk the part files are flushed to the OS and ``OUT/<domain>/progress.json``
(input position, output sizes, counts) is replaced atomically; a process killed midway
continues from the last recorded chunk (bytes past it are cut off; a part file shorter
than recorded, as after a machine crash, makes the domain start over). The ``.bin`` files are renamed into place
only when a domain is complete, and the manifest is rewritten after each domain.

A domain whose inputs (paths, sizes, modification times) and options are unchanged
since the last run is not touched again ("unchanged").
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol

import numpy as np
import orjson
import xxhash

from engine.errors import InputError
from engine.progress import ProgressCallback, report

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PROGRESS = "progress.json"
FORMAT_VERSION = 3  # 3: validation membership by seeded XXH3 (was BLAKE2b)
TEXT_SUFFIXES = (".txt", ".jsonl")
CHUNK_BYTES = 16 << 20
MAX_DOCUMENT_BYTES = 1 << 20
# A blank line (only spaces/tabs/CR) ends a document in a split .txt file; runs of them count once.
_BLANK_LINES = re.compile(rb"\n(?:[ \t\r]*\n)+")


class Tokenizer(Protocol):
    name: str
    vocab_size: int

    def encode_batch(self, documents: list[bytes]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes as tokens: no download, vocabulary 256, one token per byte."""

    name: str = "bytes"
    vocab_size: int = 256

    def encode_batch(self, documents: list[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(doc, dtype=np.uint8) for doc in documents]


class HFTokenizer:
    """A local Hugging Face ``tokenizer.json`` (needs the optional ``tokenizers`` package)."""

    def __init__(self, path: str | Path) -> None:
        try:
            from tokenizers import Tokenizer as _HF
        except ImportError as exc:
            raise InputError(
                "a tokenizer.json was given but the 'tokenizers' package is not installed.",
                hint="pip install tokenizers, or leave out --tokenizer to use byte-level tokens.",
            ) from exc
        path = Path(path)
        if not path.is_file():
            raise InputError(f"tokenizer file {path} does not exist.", hint="give the path of a tokenizer.json.")
        self._tok = _HF.from_file(str(path))
        self.vocab_size = int(self._tok.get_vocab_size())
        self.name = f"hf:{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"

    def encode_batch(self, documents: list[bytes]) -> list[np.ndarray]:
        # encode_batch tokenises the chunk's documents on the library's own thread pool.
        encodings = self._tok.encode_batch([doc.decode("utf-8") for doc in documents], add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]


def load_tokenizer(path: str | Path | None) -> Tokenizer:
    return ByteTokenizer() if path is None else HFTokenizer(path)


def token_dtype(vocab_size: int) -> str:
    """The smallest unsigned integer type that holds every token id."""
    return "uint8" if vocab_size <= 1 << 8 else "uint16" if vocab_size <= 1 << 16 else "uint32"


@dataclass(frozen=True)
class DomainData:
    """What preparation wrote for one domain."""

    name: str
    train_tokens: int  # = unique tokens: what one epoch over the domain reads
    val_tokens: int
    train_documents: int
    val_documents: int
    skipped_lines: int
    fingerprint: str
    status: str = "written"  # written | unchanged


@dataclass(frozen=True)
class PreparedData:
    """A prepared data folder: where, which tokenizer, and its domains."""

    root: Path
    tokenizer: str
    vocab_size: int
    dtype: str
    domains: dict[str, DomainData] = field(default_factory=dict)

    @property
    def unique_tokens(self) -> dict[str, int]:
        return {name: d.train_tokens for name, d in self.domains.items()}

    @property
    def status(self) -> str:
        return "unchanged" if all(d.status == "unchanged" for d in self.domains.values()) else "written"


def _expand(source: str) -> list[Path]:
    """A file, a folder (recursively) or a glob -> the text files it names, sorted."""
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES]
    else:
        found = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
    if not found:
        raise InputError(
            f"no .txt or .jsonl files found at '{source}'.",
            hint="give a file, a folder that holds .txt/.jsonl files, or a glob such as 'data/code/*.jsonl'.",
        )
    return sorted(found)


@dataclass
class _Cursor:
    """Where reading stands in one file: the byte offset and line number of the next unread document."""

    offset: int = 0
    line: int = 1


def _bad(path: Path, line: int, what: str, skip_bad_lines: bool, skipped: list[str], hint: str) -> None:
    if not skip_bad_lines:
        raise InputError(what, file=str(path), row=line, hint=hint)
    skipped.append(f"{path}:{line}")


def _jsonl_documents(path: Path, data: bytes, cut: int, line: int, skip_bad_lines: bool,
                     skipped: list[str]) -> list[bytes]:
    """The UTF-8 texts of the complete lines in ``data[:cut]`` (which starts at line number ``line``)."""
    documents: list[bytes] = []
    view = memoryview(data)  # lines are parsed in place: splitting the chunk would copy it
    start, number = 0, line
    while start < cut:
        end = data.find(b"\n", start, cut)
        end = cut if end < 0 else end
        try:
            text = orjson.loads(view[start:end])["text"]  # orjson: several times the stdlib's speed on long strings
            if not isinstance(text, str):
                raise TypeError("'text' is not a string")
            encoded = text.encode("utf-8")
        except (UnicodeError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            if data[start:end].strip():  # a blank line is no error
                _bad(path, number, f"not a JSON object with a string 'text' field ({type(exc).__name__}: {exc}).",
                     skip_bad_lines, skipped,
                     "fix or delete the line, or pass --skip-bad-lines to leave such lines out.")
            encoded = b""
        if encoded:
            documents.append(encoded)
        start, number = end + 1, number + 1
    return documents


def _checked_utf8(path: Path, doc: bytes, line_at: Callable[[], int], skip_bad_lines: bool,
                  skipped: list[str]) -> bool:
    """Whether ``doc`` is valid UTF-8; ``line_at()`` (computed only on failure) is the line it starts on."""
    try:
        doc.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        _bad(path, line_at() + doc[: exc.start].count(b"\n"), f"invalid UTF-8 at byte {exc.start} of a document.",
             skip_bad_lines, skipped,
             "re-encode the file as UTF-8, or pass --skip-bad-lines to leave such documents out.")
        return False


def _cut(doc: bytes, max_bytes: int) -> list[bytes]:
    """A document longer than ``max_bytes`` cut into pieces at line ends (or, failing that, UTF-8 boundaries)."""
    pieces = []
    while len(doc) > max_bytes:
        end = doc.rfind(b"\n", 0, max_bytes) + 1
        if end == 0:
            end = max_bytes
            while end > 1 and doc[end] & 0xC0 == 0x80:  # never split a multi-byte character
                end -= 1
        pieces.append(doc[:end])
        doc = doc[end:]
    return [*pieces, doc]


def _read_chunks(path: Path, cursor: _Cursor, chunk_bytes: int, max_document_bytes: int,
                 skip_bad_lines: bool, skipped: list[str]) -> Iterator[list[bytes]]:
    """The documents of ``path`` from ``cursor`` on, about ``chunk_bytes`` of input at a time.

    After each yield ``cursor`` points just past the documents yielded, so a resume
    can start there. A bad line raises InputError (or is skipped when asked).
    """
    whole_file = path.suffix == ".txt" and path.stat().st_size <= max_document_bytes
    with path.open("rb") as handle:
        handle.seek(cursor.offset)
        pending = b""
        while True:
            block = handle.read(chunk_bytes)
            at_end = not block
            data = pending + block
            if whole_file and not at_end:
                pending = data
                continue
            if path.suffix == ".jsonl":
                cut = len(data) if at_end else data.rfind(b"\n") + 1
                documents = _jsonl_documents(path, data, cut, cursor.line, skip_bad_lines, skipped)
            elif whole_file:
                cut = len(data)
                documents = [data] if data and _checked_utf8(path, data, lambda: 1, skip_bad_lines, skipped) else []
            else:
                documents, cut = _split_txt(path, data, at_end, cursor.line, max_document_bytes, skip_bad_lines,
                                            skipped)
            if cut == 0 and not at_end:
                pending = data  # one line or document longer than a chunk: read on
                continue
            cursor.offset += cut
            cursor.line += data.count(b"\n", 0, cut)
            pending = data[cut:]
            if documents or at_end:
                yield documents
            if at_end:
                return


def _split_txt(path: Path, data: bytes, at_end: bool, line: int, max_bytes: int, skip_bad_lines: bool,
               skipped: list[str]) -> tuple[list[bytes], int]:
    """Documents of a large .txt file in ``data``: ended by blank lines, pieces over ``max_bytes`` cut.

    Returns the documents and how many bytes of ``data`` they used (the rest waits for more
    input). The result does not depend on where the chunks end: a document still open at the
    end of ``data`` gives only its pieces whose cut points the next chunk cannot move.
    """
    documents: list[bytes] = []

    def emit(text: bytes, position: int) -> None:
        for piece in _cut(text, max_bytes) if len(text) > max_bytes else [text]:
            if piece.strip() and _checked_utf8(path, piece, lambda: line + data.count(b"\n", 0, position),
                                               skip_bad_lines, skipped):
                documents.append(piece)
            position += len(piece)

    start = 0
    separators = [(m.start(), m.end()) for m in _BLANK_LINES.finditer(data)]
    if separators and not at_end and not data[separators[-1][1]:].strip(b" \t\r"):
        separators[-1] = (separators[-1][0], separators[-1][0])  # the next chunk may extend it: read it again
    for begin, end in separators:
        emit(data[start:begin], start)
        start = end
    rest = data[start:]
    if at_end:
        emit(rest, start)
        start = len(data)
    elif len(rest) > max_bytes:
        # Trailing blank bytes may begin a separator the next chunk completes; before them every
        # line end is a plain one, so the pieces there (all but the last) are final.
        for piece in _cut(rest[: len(rest.rstrip(b" \t\r\n"))], max_bytes)[:-1]:
            emit(piece, start)
            start += len(piece)
    return documents, start


def _fingerprint(files: list[Path], tokenizer: str, val_fraction: float, seed: int, max_document_bytes: int) -> str:
    """What the domain's output depends on: options, and every input's path, size and modification time."""
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, tokenizer, val_fraction, seed, max_document_bytes]).encode())
    for path in files:
        stat = path.stat()
        digest.update(json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns]).encode())
    return digest.hexdigest()


class ValidationSplit:
    """Held-out membership from a seeded hash of the document's bytes: the same document, the same side.

    The seed mixes the split's seed and the domain name, so two domains (or two seeds) split
    differently. A document is held out when its 64-bit XXH3 hash (of all its bytes) falls in the
    lowest ``val_fraction`` of the range. XXH3 is not cryptographic, and need not be: nobody picks
    documents against the split, it only has to spread them evenly, and it hashes at memory speed.
    """

    def __init__(self, val_fraction: float, seed: int, domain: str) -> None:
        self.seed = int.from_bytes(hashlib.sha256(f"mixplan-val:{seed}:{domain}".encode()).digest()[:8], "little")
        self.threshold = int(val_fraction * 2.0 ** 64)

    def held_out(self, document: bytes) -> bool:
        return xxhash.xxh3_64_intdigest(document, seed=self.seed) < self.threshold


@dataclass
class _Progress:
    """A domain's preparation so far; saved after every chunk so a killed run can continue."""

    fingerprint: str
    file_index: int = 0
    offset: int = 0
    line: int = 1
    tokens: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    documents: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    last_document: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})  # its length in tokens
    skipped: list[str] = field(default_factory=list)
    chunks: int = 0

    def save(self, folder: Path) -> None:
        tmp = folder / (PROGRESS + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, folder / PROGRESS)

    @classmethod
    def load(cls, folder: Path, fingerprint: str, itemsize: int) -> "_Progress":
        """The saved progress if it belongs to these inputs and its part files are intact, else a fresh start."""
        try:
            saved = cls(**json.loads((folder / PROGRESS).read_text()))
        except (OSError, ValueError, TypeError):
            return cls(fingerprint)
        parts = {split: folder / f"{split}.bin.part" for split in ("train", "val")}
        written = {split: path.stat().st_size if path.exists() else -1 for split, path in parts.items()}
        # A part file shorter than the progress says (a crash mid-move, a lost write): start over.
        if saved.fingerprint != fingerprint or any(written[s] < saved.tokens[s] * itemsize for s in parts):
            return cls(fingerprint)
        return saved


def _append(handle: BinaryIO, arrays: list[np.ndarray], dtype: str) -> None:
    if arrays:
        np.concatenate(arrays).astype(dtype, copy=False).tofile(handle)


def _move_last_document(folder: Path, state: _Progress, source: str, target: str, dtype: str) -> None:
    """Move the last document of one split to the other (a split must never be empty)."""
    if state.documents[source] < 2:
        total = state.documents[source]
        raise InputError(
            f"domain '{folder.name}' has {total} document(s); at least 2 are needed "
            "(one to train on, one held out for validation).",
            hint="add documents, or split a large .txt file into documents separated by blank lines.",
        )
    size = np.dtype(dtype).itemsize
    n = state.last_document[source]
    src = folder / f"{source}.bin.part"
    keep = (state.tokens[source] - n) * size
    with src.open("r+b") as handle:
        handle.seek(keep)
        moved = handle.read(n * size)
        handle.truncate(keep)
    with (folder / f"{target}.bin.part").open("ab") as handle:
        handle.write(moved)
    state.tokens[source] -= n
    state.tokens[target] += n
    state.documents[source] -= 1
    state.documents[target] += 1


def _prepare_domain(
    name: str, files: list[Path], out: Path, tokenizer: Tokenizer, dtype: str, val_fraction: float, seed: int,
    skip_bad_lines: bool, fingerprint: str, chunk_bytes: int, max_document_bytes: int,
    progress: ProgressCallback | None,
) -> DomainData:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    size = np.dtype(dtype).itemsize
    state = _Progress.load(folder, fingerprint, size)
    parts = {split: folder / f"{split}.bin.part" for split in ("train", "val")}
    for split, path in parts.items():  # drop what was written after the last saved chunk
        with path.open("ab") as handle:
            handle.truncate(state.tokens[split] * size)
    if state.chunks:
        log.info("resuming domain %s at file %d, byte %d", name, state.file_index, state.offset)
    split_rule = ValidationSplit(val_fraction, seed, name)
    sizes = [p.stat().st_size for p in files]
    total_bytes = sum(sizes)
    handles = {split: path.open("ab") for split, path in parts.items()}
    try:
        while state.file_index < len(files):
            path = files[state.file_index]
            cursor = _Cursor(state.offset, state.line)
            for documents in _read_chunks(path, cursor, chunk_bytes, max_document_bytes, skip_bad_lines,
                                          state.skipped):
                tokens = tokenizer.encode_batch(documents)
                held = [split_rule.held_out(doc) for doc in documents]
                for split, want in (("train", False), ("val", True)):
                    arrays = [t for t, h in zip(tokens, held) if h == want]
                    _append(handles[split], arrays, dtype)
                    state.tokens[split] += sum(len(t) for t in arrays)
                    state.documents[split] += len(arrays)
                    if arrays:
                        state.last_document[split] = len(arrays[-1])
                for handle in handles.values():  # the OS holds the tokens before the progress says so
                    handle.flush()
                state.offset, state.line, state.chunks = cursor.offset, cursor.line, state.chunks + 1
                state.save(folder)
                report(progress, f"tokenising {name}", sum(sizes[: state.file_index]) + cursor.offset, total_bytes)
            state.file_index, state.offset, state.line = state.file_index + 1, 0, 1
            state.save(folder)
    finally:
        for handle in handles.values():
            handle.close()
    for where in state.skipped:
        log.warning("skipped bad input at %s", where)
    if state.documents["val"] == 0:
        _move_last_document(folder, state, "train", "val", dtype)
    elif state.documents["train"] == 0:
        _move_last_document(folder, state, "val", "train", dtype)
    for split, path in parts.items():
        os.replace(path, folder / f"{split}.bin")
    (folder / PROGRESS).unlink()
    return DomainData(
        name=name,
        train_tokens=state.tokens["train"],
        val_tokens=state.tokens["val"],
        train_documents=state.documents["train"],
        val_documents=state.documents["val"],
        skipped_lines=len(state.skipped),
        fingerprint=fingerprint,
    )


def check_domain_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise InputError(
            f"'{name}' is not a usable domain name.",
            hint="use letters, digits, '-', '_' or '.', e.g. code=PATH.",
        )
    return name


def prepare_data(
    out: str | Path,
    sources: dict[str, list[str]],
    *,
    tokenizer_path: str | Path | None = None,
    val_fraction: float = 0.05,
    seed: int = 0,
    skip_bad_lines: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
    progress: ProgressCallback | None = None,
) -> PreparedData:
    """Tokenise each domain's sources into ``out``; unchanged domains are left as they are.

    A domain stopped midway (killed, or cancelled through ``progress``) continues
    from its last finished chunk on the next call with the same inputs and options.
    """
    if not sources:
        raise InputError("no domains given.", hint="pass one or more NAME=PATH arguments, e.g. code=src/.")
    if not 0 < val_fraction < 1:
        raise InputError(f"the validation fraction {val_fraction} is not in (0, 1).", hint="use e.g. 0.05.")
    if chunk_bytes < 1 or max_document_bytes < 1:
        raise InputError("chunk_bytes and max_document_bytes must be positive.")
    tokenizer = load_tokenizer(tokenizer_path)
    dtype = token_dtype(tokenizer.vocab_size)
    root = Path(out).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    previous = _read_manifest_raw(root)
    compatible = previous.get("tokenizer") == tokenizer.name and previous.get("format_version") == FORMAT_VERSION
    # Domains prepared earlier (and still on disk) stay in the folder and the manifest.
    kept = {
        name: DomainData(**{**old, "status": "unchanged"})
        for name, old in (previous.get("domains", {}) if compatible else {}).items()
        if (root / name / "train.bin").exists() and (root / name / "val.bin").exists()
    }
    domains: dict[str, DomainData] = {}
    for name, paths in sources.items():
        check_domain_name(name)
        files = sorted({f for source in paths for f in _expand(source)})
        fingerprint = _fingerprint(files, tokenizer.name, val_fraction, seed, max_document_bytes)
        if name in kept and kept[name].fingerprint == fingerprint:
            domains[name] = kept[name]
            continue
        domains[name] = _prepare_domain(name, files, root, tokenizer, dtype, val_fraction, seed, skip_bad_lines,
                                        fingerprint, chunk_bytes, max_document_bytes, progress)
        log.info("prepared domain %s: %d train tokens", name, domains[name].train_tokens)
        # After each domain, so a run stopped later does not redo this one.
        _write_manifest(PreparedData(root, tokenizer.name, tokenizer.vocab_size, dtype, {**kept, **domains}))
    return PreparedData(root, tokenizer.name, tokenizer.vocab_size, dtype, {**kept, **domains})


def _write_manifest(prepared: PreparedData) -> None:
    document = {
        "format_version": FORMAT_VERSION,
        "tokenizer": prepared.tokenizer,
        "vocab_size": prepared.vocab_size,
        "dtype": prepared.dtype,
        "domains": {
            name: {k: v for k, v in asdict(d).items() if k != "status"} for name, d in prepared.domains.items()
        },
    }
    tmp = prepared.root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True))
    os.replace(tmp, prepared.root / MANIFEST)


def _read_manifest_raw(root: Path) -> dict:
    path = root / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"the manifest is not valid JSON ({exc}).", file=str(path),
                         hint="delete the folder and run prepare-data again.") from None


def read_prepared(root: str | Path) -> PreparedData:
    """The prepared data folder at ``root`` as written by :func:`prepare_data`."""
    root = Path(root).expanduser()
    raw = _read_manifest_raw(root)
    if not raw:
        raise InputError(
            f"'{root}' is not a prepared data folder (no {MANIFEST}).",
            hint="run `mixplan prepare-data --out DIR name=PATH ...` first.",
        )
    domains = {name: DomainData(**{**d, "status": "unchanged"}) for name, d in raw["domains"].items()}
    return PreparedData(root, raw["tokenizer"], int(raw["vocab_size"]), raw["dtype"], domains)


def open_tokens(prepared: PreparedData, domain: str, split: str) -> np.memmap:
    """The token file of one domain and split ('train' or 'val'), memory-mapped read-only."""
    path = prepared.root / domain / f"{split}.bin"
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=prepared.dtype)  # np.memmap cannot map an empty file
    return np.memmap(path, dtype=prepared.dtype, mode="r")
