"""Every rejection names the file, the line and (where one exists) the column, and leaves every table as it was."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ingest_helpers import olmix_pair, rejected, table_counts, tidy_csv, write  # noqa: E402

from engine.errors import InputError
from engine.ingest import readers
from engine.services.ingest import ingest_files

REGMIX_MIX = "index,train_the_pile_a,train_the_pile_b\n1,0.5,0.5\n2,0.25,0.75\n3,1.0,0.0\n"
REGMIX_LOSS = "index,metric/the_pile_a_val_loss,metric/the_pile_b_val_loss\n1,3.1,4.1\n2,3.2,4.2\n3,3.3,4.3\n"


@pytest.fixture
def seeded(db_url, tmp_path):
    """A database that already holds one project, so 'unchanged' means something."""
    ingest_files("p", [tidy_csv(tmp_path, name="seed.csv")], url=db_url)
    return db_url



def assert_where(error: InputError, file: str, line: int, column: str | None = None) -> None:
    text = str(error)
    assert error.file == file and f"{file}, line {line}" in text, text
    assert error.row == line, text
    if column is not None:
        assert error.column == column and f"column '{column}'" in text, text
    assert "Fix:" in text, text


def test_empty_file(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "empty.csv", "")])
    assert_where(error, "empty.csv", 1)
    assert "empty" in error.message


def test_blank_lines_only(seeded, tmp_path):
    assert_where(rejected(seeded, [write(tmp_path / "blank.csv", "\n \n\n")]), "blank.csv", 1)


def test_header_without_rows_is_an_error(seeded, tmp_path):
    path = write(tmp_path / "header.csv", "run_id,mix:web,loss:web\n")
    before = table_counts(seeded)
    error = rejected(seeded, [path])
    assert_where(error, "header.csv", 2)
    assert "header line but no data rows" in error.message
    assert table_counts(seeded) == before


def test_binary_file_is_not_csv_or_json(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")])
    assert_where(error, "image.csv", 3)
    assert "not CSV or JSON" in error.message


def test_plain_text_is_not_csv_or_json(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "notes.txt", "these are my notes\nabout runs\n")])
    assert_where(error, "notes.txt", 1)
    assert "neither CSV" in error.message


def test_broken_json_line(seeded, tmp_path):
    path = write(tmp_path / "runs.jsonl", json.dumps({"run_id": "a", "mixture": {"x": 1}}) + "\n{\"run_id\": \"b\", \n")
    error = rejected(seeded, [path])
    assert_where(error, "runs.jsonl", 2)
    assert "not valid JSON" in error.message


def test_missing_run_id_column(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "noid.csv", "tokens,mix:web,loss:web\n10,1,3.0\n")])
    assert_where(error, "noid.csv", 1, "run_id")
    assert "--run-id-col" in str(error)


def test_missing_run_id_in_jsonl(seeded, tmp_path):
    path = write(tmp_path / "r.jsonl", json.dumps({"mixture": {"web": 1}, "measurements": []}) + "\n")
    assert_where(rejected(seeded, [path]), "r.jsonl", 1, "run_id")


def test_id_in_mixture_file_but_not_in_loss_file(seeded, tmp_path):
    mix = write(tmp_path / "train_mixture.csv", REGMIX_MIX + "4,0.5,0.5\n")
    loss = write(tmp_path / "train_loss.csv", REGMIX_LOSS)
    error = rejected(seeded, [mix, loss])
    assert_where(error, "train_mixture.csv", 5, "index")
    assert "'4'" in error.message and "train_loss.csv" in error.message


def test_id_in_loss_file_but_not_in_mixture_file(seeded, tmp_path):
    mix = write(tmp_path / "train_mixture.csv", REGMIX_MIX)
    loss = write(tmp_path / "train_loss.csv", REGMIX_LOSS + "9,3.0,4.0\n")
    error = rejected(seeded, [mix, loss])
    assert_where(error, "train_loss.csv", 5, "index")
    assert "'9'" in error.message


def test_olmix_run_missing_from_metrics(seeded, tmp_path):
    ratios, metrics = olmix_pair(tmp_path, n=4)
    lines = metrics.read_text().splitlines()
    write(metrics, "\n".join(lines[:-1]) + "\n")
    error = rejected(seeded, [ratios, metrics])
    assert_where(error, "swarm_ratios.csv", 5, "run")


def test_half_a_pair(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "train_mixture.csv", REGMIX_MIX)])
    assert_where(error, "train_mixture.csv", 1)
    assert "loss file" in error.message


@pytest.mark.parametrize("cell, words", [("-0.2", "negative"), ("lots", "expected a proportion"), ("inf", "not a finite")])
def test_bad_proportion(seeded, tmp_path, cell, words):
    path = write(tmp_path / "bad.csv", f"run_id,mix:web,mix:code,loss:web\nr1,0.6,0.4,3\nr2,{cell},1.2,3\n")
    error = rejected(seeded, [path])
    assert_where(error, "bad.csv", 3, "mix:web")
    assert words in error.message


def test_bad_proportion_in_jsonl(seeded, tmp_path):
    path = write(tmp_path / "r.jsonl", json.dumps({"run_id": "a", "mixture": {"web": "half", "code": 0.5}}) + "\n")
    assert_where(rejected(seeded, [path]), "r.jsonl", 1, "mixture.web")


def test_shares_far_from_one_are_rejected(seeded, tmp_path):
    path = write(tmp_path / "sum.csv", "run_id,mix:web,mix:code,loss:web\nr1,0.6,0.5,3\n")
    error = rejected(seeded, [path])
    assert_where(error, "sum.csv", 2, "mix:web")
    assert "sum to 1.1" in error.message


def test_shares_within_one_percent_are_renormalised_and_reported(db_url, tmp_path):
    path = write(tmp_path / "near.csv", "run_id,mix:web,mix:code,loss:web\nr1,0.6,0.396,3\n")
    report = ingest_files("p", [path], url=db_url)
    assert report.notes[0].startswith("near.csv line 2: shares summed to 0.996, renormalised")


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-Infinity", "n/a", "3.0.1"])
def test_bad_metric_value(seeded, tmp_path, cell):
    path = write(tmp_path / "m.csv", f"run_id,tokens,mix:web,loss:web,loss:code\nr1,10,1,3,2\nr1,20,1,2.9,{cell}\n")
    error = rejected(seeded, [path])
    assert_where(error, "m.csv", 3, "loss:code")


def test_bad_metric_value_in_pair(seeded, tmp_path):
    mix = write(tmp_path / "train_mixture.csv", REGMIX_MIX)
    loss = write(tmp_path / "train_loss.csv", REGMIX_LOSS.replace("3.2,4.2", "3.2,inf"))
    assert_where(rejected(seeded, [mix, loss]), "train_loss.csv", 3, "metric/the_pile_b_val_loss")


def test_nan_metric_in_jsonl(seeded, tmp_path):
    line = '{"run_id": "a", "mixture": {"web": 1}, "measurements": [{"target": "x", "value": NaN}]}\n'
    assert_where(rejected(seeded, [write(tmp_path / "r.jsonl", line)]), "r.jsonl", 1, "measurements[0].value")


def test_same_run_twice_with_different_mixture(seeded, tmp_path):
    path = write(tmp_path / "dup.csv", "run_id,tokens,mix:web,mix:code,loss:web\nr1,10,0.5,0.5,3\nr1,20,0.6,0.4,2.5\n")
    error = rejected(seeded, [path])
    assert_where(error, "dup.csv", 3, "mix:web")
    assert "line 2" in error.message


def test_same_run_checkpoint_twice_with_different_value(seeded, tmp_path):
    path = write(tmp_path / "dup.csv", "run_id,tokens,mix:web,loss:web\nr1,10,1,3\nr1,10,1,2.5\n")
    assert_where(rejected(seeded, [path]), "dup.csv", 3, "loss:web")


def test_same_run_twice_in_loss_file_with_different_values(seeded, tmp_path):
    mix = write(tmp_path / "train_mixture.csv", REGMIX_MIX)
    loss = write(tmp_path / "train_loss.csv", REGMIX_LOSS + "2,3.2,4.25\n")
    error = rejected(seeded, [mix, loss])
    assert_where(error, "train_loss.csv", 5, "metric/the_pile_b_val_loss")


def test_same_run_twice_in_jsonl(seeded, tmp_path):
    runs = [{"run_id": "a", "mixture": {"web": 1}}, {"run_id": "a", "mixture": {"web": 0.5, "code": 0.5}}]
    path = write(tmp_path / "r.jsonl", "".join(json.dumps(r) + "\n" for r in runs))
    assert_where(rejected(seeded, [path]), "r.jsonl", 2, "web")


def test_conflict_across_chunks_rolls_back_earlier_chunks(seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "ROWS_PER_CHUNK", 2)
    rows = [f"n{i},10,1,{3 + i / 100}" for i in range(9)] + ["n0,10,1,9.9"]
    path = write(tmp_path / "late.csv", "run_id,tokens,mix:web,loss:web\n" + "\n".join(rows) + "\n")
    error = rejected(seeded, [path])
    assert_where(error, "late.csv", 11, "loss:web")


def test_latin1_bytes_are_an_encoding_error(seeded, tmp_path):
    data = "run_id,mix:web,loss:web\nr1,1,3\nr\xe9sum\xe9,1,3\n".encode("latin-1")
    error = rejected(seeded, [write(tmp_path / "latin.csv", data)])
    assert_where(error, "latin.csv", 3)
    assert "UTF-8" in str(error)


def test_utf16_file_is_an_encoding_error(seeded, tmp_path):
    data = "run_id,mix:web,loss:web\nr1,1,3\n".encode("utf-16")
    error = rejected(seeded, [write(tmp_path / "u16.csv", data)])
    assert_where(error, "u16.csv", 1)
    assert "UTF-16" in error.message


def test_run_already_in_project_with_different_content(seeded, tmp_path):
    path = write(tmp_path / "again.csv", "run_id,tokens,model_params,mix:web,mix:code,loss:web\nr1,1000,2000000,0.7,0.3,3.5\n")
    error = rejected(seeded, [path])
    assert_where(error, "again.csv", 2, "model_params")
    assert "already in this project" in error.message


def test_measurement_already_in_project_with_different_value(seeded, tmp_path):
    text = "run_id,tokens,model_params,mix:web,mix:code,loss:web,seed,lr\nr1,1000,1000000,0.7,0.3,3.75,1,0.001\n"
    assert_where(rejected(seeded, [write(tmp_path / "v.csv", text)]), "v.csv", 2, "loss:web")


def test_rejection_into_a_new_project_creates_nothing(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "bad.csv", "run_id,mix:web,loss:web\nr1,2,3\n")], project="fresh")
    assert_where(error, "bad.csv", 2, "mix:web")


def test_wrong_number_of_fields(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "w.csv", "run_id,mix:web,loss:web\nr1,1\n")])
    assert_where(error, "w.csv", 2)


def test_no_mixture_or_metric_columns(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "n.csv", "run_id,tokens,a,b\nr1,1,2,3\n")])
    assert_where(error, "n.csv", 1)
    assert "mix:" in str(error)


def test_metadata_for_unknown_domain(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "d.csv", "domain,unique_tokens\nweb,1M\nwbe,2M\n")])
    assert_where(error, "d.csv", 3, "domain")
    assert "'wbe'" in error.message


def test_bad_unique_tokens(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "d.csv", "domain,unique_tokens\nweb,many\n")])
    assert_where(error, "d.csv", 2, "unique_tokens")
