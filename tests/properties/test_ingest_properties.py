"""Any bytes given to ingest either import or raise InputError, and a rejection leaves no row behind."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from ingest_helpers import TIDY, table_counts  # noqa: E402

from engine.errors import InputError
from engine.services.ingest import ingest_files

VALID_JSONL = "".join(json.dumps(r) + "\n" for r in [
    {"run_id": "a", "mixture": {"web": 0.5, "code": 0.5}, "measurements": [{"target": "x", "tokens": 10, "value": 3.0}]},
    {"run_id": "b", "mixture": {"web": 1.0}, "tokens": 20, "measurements": [{"target": "x", "value": 2.5}]},
]).encode()

CELLS = st.sampled_from(["0.5", "1", "0", "-0.1", "0.996", "3.2", "nan", "inf", "", "abc", "1e400", '"q"', "r1", "r2",
                         "1.2B", " ", "\u00e9", "0.25", "\u00b2", "1e30", "99999999999999999999", "x" * 250])
COLUMNS = st.sampled_from(["run_id", "run", "tokens", "model_params", "mix:web", "mix:code", "p_x", "loss:web",
                           "acc:arc", "metric/y", "seed", "lr", "index", "name", "domain", "unique_tokens", "", "tokenizer",
                           "method"])


@st.composite
def random_csv(draw) -> bytes:
    header = draw(st.lists(COLUMNS, min_size=1, max_size=7))
    rows = draw(st.lists(st.lists(CELLS, min_size=len(header) - 1, max_size=len(header) + 1), max_size=6))
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode()


@st.composite
def mutated(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "duplicate_line", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at: at + draw(st.integers(1, 12))]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(
                [b",", b"\n", b'"', b"nan", b"-", b"\x00", b"\xff", b"{", b"}", b"1e9", b"\r\n", b"0.0"]))
        elif kind == "duplicate_line":
            lines = bytes(data).split(b"\n")
            i = at % max(len(lines), 1)
            lines.insert(i, lines[i])
            data = bytearray(b"\n".join(lines))
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


@st.composite
def plausible_tidy(draw) -> bytes:
    """Mostly valid logs: shares near the simplex, finite losses, now and then a bad value or a conflicting row."""
    lines = ["run_id,tokens,mix:a,mix:b,loss:a,acc:b"]
    for run in range(draw(st.integers(1, 4))):
        a = draw(st.floats(0, 1))
        b = 1 - a + draw(st.sampled_from([0.0] * 12 + [0.004, -0.004, 0.05]))
        for tokens in draw(st.lists(st.sampled_from([100, 200, 300]), min_size=1, max_size=3, unique=True)):
            loss = draw(st.floats(0, 10)) if draw(st.integers(0, 29)) else float("nan")
            lines.append(f"r{run},{tokens},{a!r},{b!r},{loss!r},{draw(st.sampled_from(['0.5', '', '0.7']))}")
    return ("\n".join(lines) + "\n").encode()


inputs = st.one_of(
    st.tuples(st.just("plausible.csv"), plausible_tidy()),
    st.tuples(st.just("runs.csv"), mutated(TIDY.encode())),
    st.tuples(st.just("runs.jsonl"), mutated(VALID_JSONL)),
    st.tuples(st.just("random.csv"), random_csv()),
    st.tuples(st.sampled_from(["blob.csv", "blob.jsonl"]), st.binary(max_size=200)),
)

_names = itertools.count()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=inputs)
def test_any_bytes_import_or_raise_input_error(case, sqlite_url, tmp_path):
    name, data = case
    path = tmp_path / f"{next(_names)}-{name}"
    path.write_bytes(data)
    before = table_counts(sqlite_url)
    try:
        report = ingest_files(f"prop{next(_names)}", [path], url=sqlite_url)
    except InputError as error:
        event("rejected")
        assert str(error)
        assert table_counts(sqlite_url) == before
        return
    event("imported")
    after = table_counts(sqlite_url)
    assert after["run"] - before["run"] == report.runs_added
    assert after["measurement"] - before["measurement"] == report.measurements_added
    assert after["ingest_batch"] - before["ingest_batch"] == (0 if report.already_imported else 1)
