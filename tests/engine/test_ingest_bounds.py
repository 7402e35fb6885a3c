"""Inputs that used to crash, hang or lose rows: each is refused with a clear message and the store unchanged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ingest_helpers import rejected, table_counts, tidy_csv, write  # noqa: E402

from engine.errors import InputError
from engine.services.ingest import ingest_files, ingest_uploads

BILLION_LAUGHS = """domains:
  a: &a [x, x, x, x, x, x, x, x, x]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  web: {unique_tokens: 1B, tags: *g}
"""


@pytest.fixture
def seeded(db_url, tmp_path):
    ingest_files("p", [tidy_csv(tmp_path, name="seed.csv")], url=db_url)
    return db_url



def test_yaml_aliases_are_refused_at_once(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "meta.yaml", BILLION_LAUGHS)])
    assert error.file == "meta.yaml" and error.row == 3 and "aliases (*a) are not allowed" in error.message


def test_yaml_larger_than_the_cap_is_refused(seeded, tmp_path):
    text = "domains:\n" + "".join(f"  d{i}: {{unique_tokens: {i}, tags: {{note: {'x' * 80}}}}}\n" for i in range(12000))
    error = rejected(seeded, [write(tmp_path / "big.yaml", text)])
    assert "larger than 256 KiB" in error.message


def test_json_nested_deeper_than_the_cap(seeded, tmp_path):
    deep = {"run_id": "r", "mixture": {"web": 1.0}, "measurements": [{"target": "l", "value": 3.0}]}
    nest: dict = {}
    deep["extra"] = nest
    for _ in range(40):
        nest["x"] = {}
        nest = nest["x"]
    error = rejected(seeded, [write(tmp_path / "deep.jsonl", json.dumps(deep) + "\n")])
    assert error.row == 1 and "nested more than 16 levels" in error.message


def test_a_line_longer_than_the_cap(seeded, tmp_path, monkeypatch):
    from engine.ingest import detect

    monkeypatch.setattr(detect, "MAX_LINE_BYTES", 1 << 20)
    text = "run_id,mix:web,loss:web,note\nr1,1.0,3.0,ok\nr2,1.0,3.0," + "x" * (2 << 20) + "\n"
    error = rejected(seeded, [write(tmp_path / "long.csv", text)])
    assert error.row == 3 and "longer than 1 MiB" in error.message


def test_file_over_the_size_cap_on_the_cli_path_and_uploads(seeded, tmp_path, monkeypatch):
    monkeypatch.setenv("MIXPLAN_MAX_UPLOAD_MB", "1")
    text = "run_id,mix:web,loss:web\n" + "".join(f"r{i},1.0,3.0\n" for i in range(120_000))
    error = rejected(seeded, [write(tmp_path / "big.csv", text)])
    assert "more than the 1 MiB limit" in error.message and "MIXPLAN_MAX_UPLOAD_MB" in str(error)
    before = table_counts(seeded)
    with pytest.raises(InputError, match="more than the 1 MiB limit"):
        ingest_uploads("p", [("big.csv", text.encode())], url=seeded)
    assert table_counts(seeded) == before


def test_streamlit_upload_cap_matches_the_cli_default():
    import tomllib

    from engine.config import DEFAULT_MAX_UPLOAD_MB

    config = tomllib.loads((Path(__file__).resolve().parents[2] / "app/.streamlit/config.toml").read_text())
    assert config["server"]["maxUploadSize"] == DEFAULT_MAX_UPLOAD_MB
    assert config["client"]["showErrorDetails"] == "none"


@pytest.mark.parametrize("cell,reason", [
    ("1e308", "larger than 1"),
    ("150", "larger than 1"),
    ("1" + "0" * 400, "not a finite number"),
])
def test_shares_out_of_range(seeded, tmp_path, cell, reason):
    text = f"run_id,mix:web,mix:code,loss:web\nr1,{cell},{cell},3.0\n"
    error = rejected(seeded, [write(tmp_path / "shares.csv", text)])
    assert error.row == 2 and error.column == "mix:web" and reason in error.message


def test_json_shares_that_overflow_a_float(seeded, tmp_path):
    line = '{"run_id": "r", "mixture": {"web": 1' + "0" * 400 + '}, "measurements": [{"target": "l", "value": 3}]}\n'
    error = rejected(seeded, [write(tmp_path / "huge.jsonl", line)])
    assert error.row == 1 and error.column == "mixture.web"


def test_loss_out_of_range(seeded, tmp_path):
    error = rejected(seeded, [write(tmp_path / "loss.csv", "run_id,mix:web,loss:web\nr1,1.0,1e300\n")])
    assert error.row == 2 and error.column == "loss:web" and "outside the range of a loss" in error.message


@pytest.mark.parametrize("column,cell,what", [
    ("tokens", "1e20", "a token count"),
    ("model_params", "5e15", "a parameter count"),
])
def test_counts_out_of_range(seeded, tmp_path, column, cell, what):
    text = f"run_id,{column},mix:web,loss:web\nr1,{cell},1.0,3.0\n"
    error = rejected(seeded, [write(tmp_path / "counts.csv", text)])
    assert error.row == 2 and error.column == column and f"too large for {what}" in error.message


def test_unterminated_quote_is_rejected_where_it_opens_and_swallows_no_rows(seeded, tmp_path):
    rows = [f"r{i},1.0,{3 + i / 100:.2f},note {i}" for i in range(1, 51)]
    rows[10] = 'r11,1.0,3.10,"open quote'
    text = "run_id,mix:web,loss:web,note\n" + "\n".join(rows) + "\n"
    error = rejected(seeded, [write(tmp_path / "quote.csv", text)])
    assert error.row == 12 and "quote opened on this line is not closed" in error.message


def test_unterminated_quote_in_a_long_file_names_its_own_line(seeded, tmp_path):
    rows = [f"r{i},1.0,3.0,{'n' * 60}" for i in range(5000)]
    rows[1] = 'r1,1.0,3.0,"' + "n" * 60
    text = "run_id,mix:web,loss:web,note\n" + "\n".join(rows) + "\n"
    error = rejected(seeded, [write(tmp_path / "quote5k.csv", text)])
    assert error.row == 3, str(error)


def test_a_quoted_note_over_two_lines_is_still_accepted(db_url, tmp_path):
    text = 'run_id,mix:web,loss:web,note\nr1,1.0,3.0,"two\nlines"\nr2,1.0,3.1,plain\n'
    report = ingest_files("q", [write(tmp_path / "notes.csv", text)], url=db_url)
    assert report.runs_added == 2


def test_header_only_into_a_new_project_creates_nothing(db_url, tmp_path):
    before = table_counts(db_url)
    with pytest.raises(InputError, match="header line but no data rows"):
        ingest_files("new-project", [write(tmp_path / "h.csv", "run_id,mix:web,loss:web\n")], url=db_url)
    assert table_counts(db_url) == before


def test_yaml_integer_of_thousands_of_digits(seeded, tmp_path):
    """Found by bench/fuzz_ingest.py: PyYAML's int() refuses > 4300 digits with a ValueError."""
    error = rejected(seeded, [write(tmp_path / "m.yaml", "domains:\n  web: {unique_tokens: 1" + "0" * 5000 + "}\n")])
    assert error.file == "m.yaml" and "cannot be read" in error.message
