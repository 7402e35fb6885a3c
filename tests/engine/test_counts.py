"""One count rule and one NAME=SHARE rule, wherever a user writes a count or a share."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from ingest_helpers import write  # noqa: E402

from engine.cli import app
from engine.counts import format_count, parse_count, parse_counts, parse_shares, parse_whole_count
from engine.errors import InputError

runner = CliRunner()


@pytest.mark.parametrize("text, value", [("300B", 3e11), ("2.5T", 2.5e12), ("3e11", 3e11), ("25e9", 2.5e10),
                                         ("1e+9", 1e9), ("2E-3K", 2.0), ("1b", 1e9), (" 7M ", 7e6), ("1.5K", 1500.0),
                                         ("3g", 3e9), (42, 42.0)])
def test_parse_count_accepts_the_usual_spellings(text, value):
    assert parse_count(text, flag="--budget") == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "300X", "-5B", "0", "1e400", "B", "3 00B", "nan", "1e30"])
def test_parse_count_rejects_with_the_flag_named(text):
    with pytest.raises(InputError, match="--budget"):
        parse_count(text, flag="--budget")


def test_whole_counts_and_lists():
    assert parse_whole_count("1e+9", flag="--tokens") == 1_000_000_000
    assert parse_whole_count("250k") == 250_000 and parse_whole_count("120000000") == 120_000_000
    assert parse_counts("1M, 250k,1e+6", flag="--budgets") == [250_000, 1_000_000]
    with pytest.raises(InputError, match="--budgets"):
        parse_counts(" , ", flag="--budgets")


def test_format_count():
    assert format_count(2.5e11) == "250B" and format_count(1.2e12) == "1.2T" and format_count(120_000_000) == "120M"
    assert format_count(None) == "-" and format_count(float("nan")) == "-" and format_count(12) == "12"
    assert parse_count(format_count(3e11)) == 3e11  # what is printed reads back


def test_parse_shares_one_rule_for_lists_and_repeated_flags():
    assert parse_shares(["code=0.05", "web=0.5"], flag="--min") == {"code": 0.05, "web": 0.5}
    assert parse_shares("code=0.4, web=0.6", flag="--mixture") == {"code": 0.4, "web": 0.6}
    for bad, pattern in [("code", "NAME=SHARE"), ("code=x", "not a number"), ("code=-1", "between 0 and 1"),
                         ("code=nan", "between 0 and 1"), ("code=0.1,code=0.2", "twice")]:
        with pytest.raises(InputError, match=pattern) as info:
            parse_shares(bad, flag="--mixture")
        assert "--mixture" in str(info.value)


def test_trainer_spec_reads_counts_and_mixture_like_the_planner(tmp_path):
    from engine.cli.train import _spec_options

    spec = _spec_options("p", tmp_path, "r", "1e+9", "code=0.4,web=0.6", "static", "tiny", 16, 2, 1e-3, 0, 2,
                         "cpu", False, None, 1, 1, 1, 1.0, 1.0, False)
    assert spec.tokens == 1_000_000_000 and spec.mixture == {"code": 0.4, "web": 0.6}


def test_trainer_mixture_uses_the_ingest_share_tolerance():
    from engine.train.loop import TrainSpec, mixture_vector

    ok = TrainSpec(project="p", data_dir="d", name="r", tokens=10_000, mixture={"a": 0.5, "b": 0.505})
    assert mixture_vector(ok, ["a", "b"]).sum() == pytest.approx(1.0)
    off = TrainSpec(project="p", data_dir="d", name="r", tokens=10_000, mixture={"a": 0.5, "b": 0.3})
    with pytest.raises(InputError, match="sum to 0.8"):
        mixture_vector(off, ["a", "b"])


def test_ingest_and_domains_set_accept_the_same_spellings(sqlite_url, tmp_path):
    path = write(tmp_path / "runs.csv", "run_id,tokens,model_params,mix:web,mix:code,loss:web\n"
                                        "r1,1e+9,2.5M,0.7,0.3,3.5\nr2,300B,1e+6,0.2,0.8,3.1\n")
    result = runner.invoke(app, ["ingest", "-p", "p", str(path), "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    runs = json.loads(runner.invoke(app, ["runs", "-p", "p", "--json", "--db", sqlite_url]).stdout)["runs"]
    assert [(r["name"], r["model_params"]) for r in runs] == [("r1", 2_500_000), ("r2", 1_000_000)]
    result = runner.invoke(app, ["domains", "set", "web", "-p", "p", "--unique-tokens", "1e+9", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    domains = json.loads(runner.invoke(app, ["domains", "-p", "p", "--json", "--db", sqlite_url]).stdout)["domains"]
    assert next(d for d in domains if d["name"] == "web")["unique_tokens"] == 1_000_000_000
    bad = runner.invoke(app, ["domains", "set", "web", "-p", "p", "--unique-tokens", "lots", "--db", sqlite_url])
    assert bad.exit_code == 2 and "unique_tokens" in bad.stderr and "300B" in bad.stderr
