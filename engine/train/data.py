"""Data preparation: per-domain text -> memory-mapped token files.

Each domain is a list of sources (files, folders or globs) holding ``.txt``
files (one document a file) or ``.jsonl`` files (one document a line, in its
``text`` field). Documents are tokenised once; a deterministic, seeded share of
the documents (never fewer than one) is held out as the domain's validation
slice, so validation and training never share a document. Output, per domain::

    OUT/<domain>/train.bin   OUT/<domain>/val.bin   (uint16, or uint32 for vocabularies > 65535)
    OUT/manifest.json        tokenizer, dtype, per-domain counts and input fingerprints

A domain whose inputs (paths, sizes, SHA-256) and options are unchanged since the
last run is not touched again ("unchanged").
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
from tqdm import tqdm

from engine.errors import InputError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
TEXT_SUFFIXES = (".txt", ".jsonl")


class Tokenizer(Protocol):
    name: str
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes as tokens: no download, vocabulary 256, one token per byte."""

    name: str = "bytes"
    vocab_size: int = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


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

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids


def load_tokenizer(path: str | Path | None) -> Tokenizer:
    return ByteTokenizer() if path is None else HFTokenizer(path)


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


def _documents(path: Path, skip_bad_lines: bool, skipped: list[str]) -> Iterator[str]:
    """The documents of one file; a bad line raises InputError (or is skipped when asked)."""
    raw = path.read_bytes()
    if path.suffix == ".jsonl":
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                text = json.loads(line.decode("utf-8"))["text"]
                if not isinstance(text, str):
                    raise TypeError("'text' is not a string")
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
                if not skip_bad_lines:
                    raise InputError(
                        f"not a JSON object with a string 'text' field ({type(exc).__name__}: {exc}).",
                        file=str(path), row=number, column="text",
                        hint="fix or delete the line, or pass --skip-bad-lines to leave such lines out.",
                    ) from None
                skipped.append(f"{path}:{number}")
                continue
            if text:
                yield text
        return
    try:
        yield raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        if not skip_bad_lines:
            raise InputError(
                f"invalid UTF-8 at byte {exc.start}.", file=str(path), row=line,
                hint="re-encode the file as UTF-8, or pass --skip-bad-lines to leave such files out.",
            ) from None
        skipped.append(f"{path}:{line}")


def _fingerprint(files: list[Path], tokenizer: str, val_fraction: float, seed: int) -> str:
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, tokenizer, val_fraction, seed]).encode())
    for path in files:
        digest.update(str(path.resolve()).encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def validation_documents(n_documents: int, val_fraction: float, seed: int, domain: str) -> np.ndarray:
    """Indices of held-out documents: a seeded choice of ceil(fraction*n), at least one, leaving one to train on."""
    if n_documents < 2:
        raise InputError(
            f"domain '{domain}' has {n_documents} document(s); at least 2 are needed "
            "(one to train on, one held out for validation).",
            hint="add documents, or split a large .txt file into several files / .jsonl lines.",
        )
    n_val = min(n_documents - 1, max(1, int(np.ceil(val_fraction * n_documents))))
    # The domain name enters the seed so two domains with equal sizes do not share a split.
    domain_seed = int.from_bytes(hashlib.sha256(domain.encode()).digest()[:4], "little")
    rng = np.random.default_rng([seed, domain_seed])
    return np.sort(rng.choice(n_documents, size=n_val, replace=False))


def _write_tokens(path: Path, chunks: list[np.ndarray], dtype: str) -> int:
    tokens = np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype=dtype)
    tmp = path.with_suffix(".tmp")
    tokens.tofile(tmp)
    os.replace(tmp, path)  # never leave a half-written token file behind
    return int(tokens.size)


def _prepare_domain(
    name: str, files: list[Path], out: Path, tokenizer: Tokenizer, dtype: str,
    val_fraction: float, seed: int, skip_bad_lines: bool, fingerprint: str,
) -> DomainData:
    skipped: list[str] = []
    encoded = [
        np.asarray(tokenizer.encode(doc), dtype=np.int64)
        for path in tqdm(files, desc=f"tokenising {name}", unit="file", disable=None, leave=False)
        for doc in _documents(path, skip_bad_lines, skipped)
    ]
    for where in skipped:
        log.warning("skipped bad input at %s", where)
    held_out = set(validation_documents(len(encoded), val_fraction, seed, name).tolist())
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    train = [doc for i, doc in enumerate(encoded) if i not in held_out]
    val = [doc for i, doc in enumerate(encoded) if i in held_out]
    return DomainData(
        name=name,
        train_tokens=_write_tokens(folder / "train.bin", train, dtype),
        val_tokens=_write_tokens(folder / "val.bin", val, dtype),
        train_documents=len(train),
        val_documents=len(val),
        skipped_lines=len(skipped),
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
) -> PreparedData:
    """Tokenise each domain's sources into ``out``; unchanged domains are left as they are."""
    if not sources:
        raise InputError("no domains given.", hint="pass one or more NAME=PATH arguments, e.g. code=src/.")
    if not 0 < val_fraction < 1:
        raise InputError(f"the validation fraction {val_fraction} is not in (0, 1).", hint="use e.g. 0.05.")
    tokenizer = load_tokenizer(tokenizer_path)
    dtype = "uint16" if tokenizer.vocab_size <= 1 << 16 else "uint32"
    root = Path(out).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    previous = _read_manifest_raw(root)
    same_tokenizer = previous.get("tokenizer") == tokenizer.name
    domains: dict[str, DomainData] = {}
    for name, paths in sources.items():
        check_domain_name(name)
        files = sorted({f for source in paths for f in _expand(source)})
        fingerprint = _fingerprint(files, tokenizer.name, val_fraction, seed)
        old = previous.get("domains", {}).get(name)
        if (
            same_tokenizer and old and old["fingerprint"] == fingerprint
            and (root / name / "train.bin").exists() and (root / name / "val.bin").exists()
        ):
            domains[name] = DomainData(**{**old, "status": "unchanged"})
            continue
        domains[name] = _prepare_domain(
            name, files, root, tokenizer, dtype, val_fraction, seed, skip_bad_lines, fingerprint
        )
        log.info("prepared domain %s: %d train tokens", name, domains[name].train_tokens)
    # Domains prepared earlier and not named this time stay in the folder and the manifest.
    if same_tokenizer:
        for name, old in previous.get("domains", {}).items():
            if name not in domains and (root / name / "train.bin").exists():
                domains[name] = DomainData(**{**old, "status": "unchanged"})
    prepared = PreparedData(root, tokenizer.name, tokenizer.vocab_size, dtype, domains)
    if prepared.status != "unchanged":
        _write_manifest(prepared)
    return prepared


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
