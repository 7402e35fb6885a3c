"""Streaming prep: the tokens of every document, bounded memory, resume after kill -9, large .txt splitting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from engine.train.data import PROGRESS, ValidationSplit, open_tokens, prepare_data, token_dtype
from engine.train.demo_corpus import build_demo_corpus

REPO = Path(__file__).resolve().parents[2]


def split_into_documents(train: np.ndarray, val: np.ndarray, documents: list[np.ndarray]) -> list[bool]:
    """Walk the documents in input order: each must be the next run of train.bin or of val.bin.

    Returns, per document, whether it was held out; fails unless both files are used up exactly.
    """
    at = {"train": 0, "val": 0}
    held = []
    for doc in documents:
        n = len(doc)
        if np.array_equal(train[at["train"]:at["train"] + n], doc):
            side = "train"
        elif np.array_equal(val[at["val"]:at["val"] + n], doc):
            side = "val"
        else:
            raise AssertionError(f"document {len(held)} is neither the next train nor the next val run")
        at[side] += n
        held.append(side == "val")
    assert at == {"train": len(train), "val": len(val)}
    return held


def test_demo_corpus_tokens_are_each_documents_utf8_bytes(tmp_path):
    corpus = build_demo_corpus(tmp_path / "corpus", caps={"code": 400_000, "prose": 100_000, "legal": 40_000})
    prepared = prepare_data(tmp_path / "out", {n: [str(p)] for n, p in corpus.files.items()}, chunk_bytes=50_000)
    assert prepared.dtype == "uint8"
    for name, path in corpus.files.items():
        # Today's byte tokenizer, from first principles: a document's tokens are its text's UTF-8 bytes.
        texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
        documents = [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts if t]
        train, val = (np.asarray(open_tokens(prepared, name, s)) for s in ("train", "val"))
        held = split_into_documents(train, val, documents)
        rule = ValidationSplit(0.05, 0, name)
        expected = [rule.held_out(d.tobytes()) for d in documents]
        if not any(expected):  # the documented fix-up: the last training document moves to validation
            expected[max(i for i, h in enumerate(expected) if not h)] = True
        assert held == expected
        d = prepared.domains[name]
        assert (d.train_documents, d.val_documents) == (held.count(False), held.count(True))
        assert d.train_tokens == len(train) and d.val_tokens == len(val)


def test_hf_tokenizer_encode_batch_matches_encoding_each_document(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    texts = [f"document {i}: " + " ".join(f"word{i * 7 + j}" for j in range(40)) for i in range(60)]
    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=["[UNK]"]))
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    prepared = prepare_data(tmp_path / "out", {"d": [str(tmp_path / "d.jsonl")]},
                            tokenizer_path=tmp_path / "tokenizer.json", chunk_bytes=1000, val_fraction=0.3)
    assert prepared.vocab_size == tok.get_vocab_size() > 256 and prepared.dtype == "uint16"
    documents = [np.asarray(tok.encode(t, add_special_tokens=False).ids) for t in texts]
    train, val = (np.asarray(open_tokens(prepared, "d", s)) for s in ("train", "val"))
    held = split_into_documents(train, val, documents)
    assert 0 < sum(held) < len(held)


def test_token_dtype_by_vocabulary_size():
    assert [token_dtype(v) for v in (256, 257, 65536, 65537)] == ["uint8", "uint16", "uint16", "uint32"]


def write_jsonl(path: Path, megabytes: int, doc_bytes: int = 80_000) -> int:
    """About ``megabytes`` of JSONL, one ~``doc_bytes`` document a line, each distinct."""
    body = ("lorem ipsum dolor sit amet, ü " * (doc_bytes // 31 + 1))[:doc_bytes]
    n = megabytes * 1_000_000 // doc_bytes
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps({"text": f"{i} {body}"}, ensure_ascii=False) + "\n")
    return n


CHILD = textwrap.dedent("""
    import json, os, resource, signal, sys
    from engine.train.data import prepare_data
    src, out, chunk, stop_after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seen = []

    def progress(event):
        seen.append(event)
        if len(seen) == stop_after:  # the chunk's tokens and progress file are on disk: die hard
            os.kill(os.getpid(), signal.SIGKILL)

    prepared = prepare_data(out, {"big": [src]}, chunk_bytes=chunk, progress=progress)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kb": base, "peak_kb": peak, "tokens": prepared.domains["big"].train_tokens}))
""")


def run_child(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600)


def test_memory_stays_bounded_on_a_large_domain(tmp_path):
    src = tmp_path / "big.jsonl"
    write_jsonl(src, 200)
    done = run_child(src, tmp_path / "out", 16 << 20, 0)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    grown_mb = (figures["peak_kb"] - figures["base_kb"]) / 1024
    # The old prep held the domain as int64 (8x the file) plus Python ints; here a few 16 MB chunks at most.
    assert grown_mb < 150, figures
    assert figures["tokens"] > 150_000_000


def test_a_prep_killed_midway_resumes_to_the_same_files(tmp_path):
    src = tmp_path / "d.jsonl"
    write_jsonl(src, 4, doc_bytes=20_000)
    killed = run_child(src, tmp_path / "out", 300_000, 5)
    assert killed.returncode == -9, killed.stderr
    progress = json.loads((tmp_path / "out" / "big" / PROGRESS).read_text())
    assert progress["chunks"] == 5 and 0 < progress["offset"] < src.stat().st_size
    assert not (tmp_path / "out" / "big" / "train.bin").exists()  # renamed into place only when complete
    # Bytes written after the last progress save would be dropped on resume; simulate some.
    with (tmp_path / "out" / "big" / "train.bin.part").open("ab") as handle:
        handle.write(b"garbage after the last saved chunk")
    events = []
    resumed = prepare_data(tmp_path / "out", {"big": [str(src)]}, chunk_bytes=300_000, progress=events.append)
    assert len(events) < 14  # it continued: about 4 MB / 300 kB = 14 chunks in a fresh run
    fresh = prepare_data(tmp_path / "fresh", {"big": [str(src)]}, chunk_bytes=1 << 20)
    for split in ("train", "val"):
        assert (tmp_path / "out" / "big" / f"{split}.bin").read_bytes() == \
            (tmp_path / "fresh" / "big" / f"{split}.bin").read_bytes()
    assert resumed.domains["big"] == fresh.domains["big"]
    assert not (tmp_path / "out" / "big" / PROGRESS).exists()


def large_txt() -> tuple[str, list[str]]:
    """A .txt file with blank-line separated documents, and the documents expected at max 1000 bytes."""
    short = [f"paragraph {i}\nwith two lines é" for i in range(30)]
    long_lines = "\n".join("x" * 299 for _ in range(10))  # 3 lines fit in 1000 bytes: cut at line ends
    no_newline = "é" * 1250  # 2500 bytes, no line end: cut at character boundaries
    separators = ["\n\n", "\n   \n\n", "\r\n\r\n", "\n\t\n"]
    parts = [*short[:10], long_lines, *short[10:20], no_newline, *short[20:]]
    text = "".join(p + separators[i % len(separators)] for i, p in enumerate(parts))
    expected = [*short[:10], *[("x" * 299 + "\n") * 3] * 3, "x" * 299, *short[10:20], "é" * 500, "é" * 500,
                "é" * 250, *short[20:]]
    # "\r\n\r\n" leaves the "\r" of the line before it in the document, as the blank line is what ends it.
    expected = [e + "\r" if p_end else e for e, p_end in zip(expected, _ends_with_cr(parts, separators, expected))]
    return text, expected


def _ends_with_cr(parts, separators, expected):
    # Which expected documents are the last piece of a part followed by "\r\n\r\n".
    flags, k = [], 0
    for i, p in enumerate(parts):
        pieces = {10: 4, 21: 3}.get(i, 1)
        flags += [False] * (pieces - 1) + [separators[i % len(separators)] == "\r\n\r\n"]
        k += pieces
    assert k == len(expected)
    return flags


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 700, 333])
def test_a_large_txt_is_split_into_documents_the_same_at_any_chunk_size(tmp_path, chunk_bytes):
    text, expected = large_txt()
    src = tmp_path / "big.txt"
    src.write_bytes(text.encode("utf-8"))
    prepared = prepare_data(tmp_path / "out", {"t": [str(src)]}, chunk_bytes=chunk_bytes, max_document_bytes=1000,
                            val_fraction=0.2)
    documents = [np.frombuffer(e.encode("utf-8"), dtype=np.uint8) for e in expected]
    train, val = (np.asarray(open_tokens(prepared, "t", s)) for s in ("train", "val"))
    held = split_into_documents(train, val, documents)
    assert prepared.domains["t"].train_documents + prepared.domains["t"].val_documents == len(expected)
    assert 0 < sum(held) < len(held)


def test_a_small_txt_file_is_one_document(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"doc {i}\n\nstill doc {i}\n")
    prepared = prepare_data(tmp_path / "out", {"t": [str(tmp_path)]}, max_document_bytes=1000)
    assert prepared.domains["t"].train_documents + prepared.domains["t"].val_documents == 3


def test_the_validation_split_is_seeded_even_and_deterministic():
    documents = [f"document {i}".encode() for i in range(20_000)]
    for fraction in (0.05, 0.3):
        rule = ValidationSplit(fraction, 0, "web")
        held = [rule.held_out(d) for d in documents]
        assert held == [ValidationSplit(fraction, 0, "web").held_out(d) for d in documents]
        # Binomial standard deviation: 31 documents at 5%, 65 at 30%; 4 of them is a loose bound.
        assert abs(sum(held) - fraction * len(documents)) < 4 * (len(documents) * fraction * (1 - fraction)) ** 0.5
    base = [ValidationSplit(0.3, 0, "web").held_out(d) for d in documents]
    for other in (ValidationSplit(0.3, 1, "web"), ValidationSplit(0.3, 0, "code")):
        assert sum(a != b for a, b in zip(base, (other.held_out(d) for d in documents))) > 0.3 * len(documents)


def test_jsonl_blank_lines_are_skipped_and_a_bad_line_is_named_in_a_later_chunk(tmp_path):
    src = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": f"doc {i} " + "x" * 200}) for i in range(40)]
    lines[7] = "  \r"
    lines[10] = ""
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepared = prepare_data(tmp_path / "out", {"d": [str(src)]}, chunk_bytes=1000)
    d = prepared.domains["d"]
    assert d.train_documents + d.val_documents == 38
    lines[33] = '{"text": 5}'
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        prepare_data(tmp_path / "bad", {"d": [str(src)]}, chunk_bytes=1000)
    assert err.value.row == 34 and "'text' is not a string" in str(err.value)
