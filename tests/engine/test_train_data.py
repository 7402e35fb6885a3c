"""prepare-data: byte counts, document-level validation split, idempotence, bad lines, unique tokens in the store."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import InputError
from engine.services.training import prepare
from engine.store import Domain, EvalTarget, session_scope
from engine.train.data import open_tokens, prepare_data, read_prepared, token_dtype


def documents(prefix: str, n: int) -> list[str]:
    # Each document carries a unique marker so train/val membership can be checked by content.
    return [f"<{prefix}-doc-{i:03d}> " + "é and ascii " * (i % 7 + 3) + f"</{prefix}-{i:03d}>" for i in range(n)]


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "web").mkdir()
    for i, doc in enumerate(documents("web", 6)):
        (tmp_path / "web" / f"page{i}.txt").write_text(doc, encoding="utf-8")
    code = tmp_path / "code.jsonl"
    code.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents("code", 40)), encoding="utf-8")
    return {"web": [str(tmp_path / "web")], "code": [str(code)]}


def test_byte_level_token_counts_equal_the_utf8_bytes(tmp_path, corpus):
    prepared = prepare_data(tmp_path / "out", corpus)
    for name, prefix, n in (("web", "web", 6), ("code", "code", 40)):
        total_bytes = sum(len(d.encode("utf-8")) for d in documents(prefix, n))
        d = prepared.domains[name]
        assert d.train_tokens + d.val_tokens == total_bytes
        assert d.train_documents + d.val_documents == n
        assert prepared.unique_tokens[name] == d.train_tokens
    assert read_prepared(tmp_path / "out").domains["code"].train_tokens == prepared.domains["code"].train_tokens


def test_validation_and_training_slices_are_disjoint_by_document(tmp_path, corpus):
    prepared = prepare_data(tmp_path / "out", corpus, val_fraction=0.25, seed=3)
    for name, prefix, n in (("web", "web", 6), ("code", "code", 40)):
        train = bytes(np.asarray(open_tokens(prepared, name, "train"), dtype=np.uint8)).decode("utf-8")
        val = bytes(np.asarray(open_tokens(prepared, name, "val"), dtype=np.uint8)).decode("utf-8")
        in_train = {i for i in range(n) if f"<{prefix}-doc-{i:03d}>" in train}
        in_val = {i for i in range(n) if f"<{prefix}-doc-{i:03d}>" in val}
        assert in_train.isdisjoint(in_val) and in_train | in_val == set(range(n))
        assert in_train and in_val  # never an empty side
    # 40 documents at 25%: the hash split holds out about a quarter (binomial sd ~2.7).
    assert 4 <= prepared.domains["code"].val_documents <= 16
    again = prepare_data(tmp_path / "again", corpus, val_fraction=0.25, seed=3)
    other = prepare_data(tmp_path / "other", corpus, val_fraction=0.25, seed=4)
    code = lambda p: bytes(np.asarray(open_tokens(p, "code", "val"), dtype=np.uint8))  # noqa: E731
    assert code(again) == code(prepared)  # deterministic for a seed
    assert code(other) != code(prepared)


def test_rerun_on_unchanged_input_does_no_work(tmp_path, corpus):
    first = prepare_data(tmp_path / "out", corpus)
    files = [tmp_path / "out" / name / f"{split}.bin" for name in ("web", "code") for split in ("train", "val")]
    files.append(tmp_path / "out" / "manifest.json")
    stamps = {f: os.stat(f).st_mtime_ns for f in files}
    second = prepare_data(tmp_path / "out", corpus)
    assert first.status == "written" and second.status == "unchanged"
    assert {f: os.stat(f).st_mtime_ns for f in files} == stamps
    # One domain's input changes: only that domain is redone.
    with open(corpus["code"][0], "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "one more document"}) + "\n")
    third = prepare_data(tmp_path / "out", corpus)
    assert third.domains["code"].status == "written" and third.domains["web"].status == "unchanged"
    assert third.domains["code"].train_documents + third.domains["code"].val_documents == 41


def test_a_corrupt_line_is_reported_with_file_and_line(tmp_path, corpus):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine one"}\n{"text": "fine two"}\n{"text": broken\n{"txt": "no text"}\n{"text": "ok"}\n')
    with pytest.raises(InputError) as caught:
        prepare_data(tmp_path / "out", {"bad": [str(bad)]})
    assert caught.value.file == str(bad) and caught.value.row == 3
    assert "--skip-bad-lines" in str(caught.value)
    assert not (tmp_path / "out" / "manifest.json").exists()
    prepared = prepare_data(tmp_path / "out", {"bad": [str(bad)]}, skip_bad_lines=True)
    d = prepared.domains["bad"]
    assert d.skipped_lines == 2 and d.train_documents + d.val_documents == 3


def test_missing_source_and_bad_names_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no .txt or .jsonl files"):
        prepare_data(tmp_path / "out", {"web": [str(tmp_path / "nothing-here")]})
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="not a usable domain name"):
        prepare_data(tmp_path / "out", {"../up": [str(tmp_path / "a.txt")]})
    with pytest.raises(InputError, match="at least 2 are needed"):
        prepare_data(tmp_path / "out", {"one": [str(tmp_path / "a.txt")]})


def test_unique_tokens_are_recorded_in_the_project(tmp_path, corpus, db_url):
    prepared = prepare(tmp_path / "out", corpus, project="p", url=db_url)
    with session_scope(db_url) as s:
        stored = {d.name: d.unique_tokens for d in s.scalars(select(Domain))}
        targets = {t.name: t.direction for t in s.scalars(select(EvalTarget))}
    assert stored == prepared.unique_tokens
    assert targets == {"web": "lower", "code": "lower"}


def test_cli_prepare_data_json(tmp_path, corpus, sqlite_url):
    args = ["prepare-data", "--out", str(tmp_path / "out"), "--json", "--db", sqlite_url,
            *(f"{k}={v[0]}" for k, v in corpus.items())]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["status"] == "written"
    second = CliRunner().invoke(app, args)
    assert json.loads(second.stdout)["status"] == "unchanged"
    bad = CliRunner().invoke(app, ["prepare-data", "--out", str(tmp_path / "o"), "nopath"])
    assert bad.exit_code == 2 and "NAME=PATH" in bad.output


def test_a_local_hugging_face_tokenizer_json(tmp_path, corpus, monkeypatch):
    tokenizers = pytest.importorskip("tokenizers", reason="the optional 'tokenizers' package (pip install tokenizers)")
    # A word-level tokenizer trained here, saved as tokenizer.json: no download.
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.WordLevelTrainer(special_tokens=["[UNK]"])
    tokenizer.train_from_iterator(documents("code", 40) + documents("web", 6), trainer)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    prepared = prepare_data(tmp_path / "out", corpus, tokenizer_path=path)
    # A vocabulary under 256 words fits uint8 tokens.
    assert prepared.tokenizer.startswith("hf:tokenizer.json:") and prepared.dtype == token_dtype(prepared.vocab_size)
    expected = sum(len(tokenizer.encode(d, add_special_tokens=False).ids) for d in documents("code", 40))
    d = prepared.domains["code"]
    assert d.train_tokens + d.val_tokens == expected
    assert prepared.vocab_size == tokenizer.get_vocab_size()
    assert expected < sum(len(doc.encode()) for doc in documents("code", 40)) / 3  # words, not bytes
    assert np.asarray(open_tokens(prepared, "code", "train")).max() < prepared.vocab_size
    # Switching tokenizer redoes every domain.
    assert prepare_data(tmp_path / "out", corpus).domains["code"].status == "written"


def test_a_tokenizer_json_without_the_package_is_a_clear_error(tmp_path, corpus, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tokenizers", None)  # as if not installed
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(InputError, match="pip install tokenizers"):
        prepare_data(tmp_path / "out", corpus, tokenizer_path=tmp_path / "tokenizer.json")
