"""One mixture reader: predict reads every layout ingest reads, with ingest's checks and share tolerance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from ingest_helpers import olmix_pair, write  # noqa: E402

from engine.cli import app
from engine.errors import InputError
from engine.ingest.mixtures import read_mixtures
from engine.plan.suggest import Suggestion
from engine.services.ingest import ingest_files

runner = CliRunner()
DOMAINS = ["dclm:health", "dclm:science", "arxiv"]


@pytest.fixture
def swarm(tmp_path, sqlite_url):
    ratios, metrics = olmix_pair(tmp_path, n=12)
    ingest_files("swarm", [ratios, metrics], url=sqlite_url)
    fitted = runner.invoke(app, ["fit", "-p", "swarm", "-t", "arc_easy:rc::olmes", "--laws", "linear",
                                 "--bootstrap", "4", "--db", sqlite_url])
    assert fitted.exit_code == 0, fitted.output
    return ratios, metrics


def test_predict_accepts_the_olmix_ratios_file_ingest_accepted(swarm, sqlite_url):
    ratios, _ = swarm
    result = runner.invoke(app, ["predict", "-p", "swarm", "-t", "arc_easy:rc::olmes", "--mixtures", str(ratios),
                                 "--json", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    frame = pd.read_csv(ratios)
    assert [c["name"] for c in doc["candidates"]] == list(frame["run"])
    got = np.array([[c["mixture"][d] for d in DOMAINS] for c in doc["candidates"]])
    np.testing.assert_allclose(got, frame[DOMAINS].to_numpy() / frame[DOMAINS].to_numpy().sum(1, keepdims=True))


def test_predict_refuses_the_metrics_half_with_a_clear_error(swarm, sqlite_url):
    _, metrics = swarm
    result = runner.invoke(app, ["predict", "-p", "swarm", "-t", "arc_easy:rc::olmes", "-m", str(metrics),
                                 "--db", sqlite_url])
    assert result.exit_code == 2 and "swarm_metrics.csv" in result.stderr and "not a file of mixtures" in result.stderr


def test_every_layout_reads_to_the_same_mixtures(tmp_path):
    expected = np.array([[0.5, 0.3, 0.2], [0.1, 0.0, 0.9]])
    files = {
        "plain.csv": "run_id,dclm:health,dclm:science,arxiv\na,0.5,0.3,0.2\nb,0.1,0,0.9\n",
        "tidy.csv": "run_id,tokens,mix:dclm:health,mix:dclm:science,mix:arxiv,loss:x,seed\n"
                    "a,100,0.5,0.3,0.2,3.1,1\na,200,0.5,0.3,0.2,2.9,1\nb,100,0.1,0,0.9,3.3,2\n",
        "regmix.csv": "index,train_x_dclm:health,train_x_dclm:science,train_x_arxiv\na,0.5,0.3,0.2\nb,0.1,0,0.9\n",
        "runs.jsonl": json.dumps({"run_id": "a", "mixture": dict(zip(DOMAINS, expected[0]))}) + "\n"
                      + json.dumps({"run_id": "b", "mixture": {"dclm:health": 0.1, "arxiv": 0.9}}) + "\n",
    }
    for name, text in files.items():
        table = read_mixtures(write(tmp_path / name, text), DOMAINS)
        assert table.names == ["a", "b"], name
        np.testing.assert_allclose(table.shares, expected, err_msg=name)
    suggestion = Suggestion(DOMAINS, expected, np.zeros(2), np.zeros(2))
    again = read_mixtures(write(tmp_path / "suggested.csv", suggestion.to_csv()), DOMAINS)
    np.testing.assert_allclose(again.shares, expected)  # what `mixplan suggest` writes, predict reads


def test_one_share_tolerance_for_ingest_and_predict(tmp_path, sqlite_url):
    off = "run_id,mix:dclm:health,mix:dclm:science,mix:arxiv,loss:x\na,0.5,0.3,0.215,3.0\n"  # sums to 1.015
    path = write(tmp_path / "off.csv", off)
    with pytest.raises(InputError, match=r"sum to 1.015, not 1 \(tolerance 1%\)") as from_reader:
        read_mixtures(path, DOMAINS)
    with pytest.raises(InputError, match=r"sum to 1.015, not 1 \(tolerance 1%\)") as from_ingest:
        ingest_files("p", [path], url=sqlite_url)
    assert from_reader.value.row == from_ingest.value.row == 2
    close = write(tmp_path / "close.csv", off.replace("0.215", "0.205"))  # within 1%: renormalised, said so
    table = read_mixtures(close, DOMAINS)
    assert table.shares.sum() == pytest.approx(1.0) and any("renormalised" in n for n in table.notes)


def test_reader_errors_name_file_line_and_column(tmp_path):
    bad = write(tmp_path / "bad.csv", "run_id,dclm:health,arxiv\na,0.5,0.5\nb,x,0.5\n")
    with pytest.raises(InputError) as info:
        read_mixtures(bad, DOMAINS)
    assert (info.value.file, info.value.row, info.value.column) == ("bad.csv", 3, "dclm:health")
    with pytest.raises(InputError, match="column 'video' names no domain"):
        read_mixtures(write(tmp_path / "u.csv", "run_id,video,arxiv\na,0.5,0.5\n"), DOMAINS)
    with pytest.raises(InputError, match="'video' is not a domain"):
        read_mixtures(write(tmp_path / "u.jsonl", json.dumps({"run_id": "a", "mixture": {"video": 1}}) + "\n"), DOMAINS)
    with pytest.raises(InputError, match="does not exist"):
        read_mixtures(tmp_path / "missing.csv", DOMAINS)
