"""Each input format imports with the right counts, names and values, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ingest_helpers import jsonl, olmix_pair, table_counts, tidy_csv, write  # noqa: E402

from engine.ingest import pairs, readers
from engine.ingest.table import ColumnRoles
from engine.services.ingest import ingest_files, ingest_uploads, set_domain_metadata
from engine.services.runs import has_learning_curves, learning_curves, list_domains, list_runs, list_targets
from engine.store import session_scope
from engine.store.dataset import load_dataset


def regmix_paths(regmix_dir: Path) -> list[Path]:
    return [regmix_dir / "train_mixture_1m.csv", regmix_dir / "train_pile_loss_1m.csv"]


def test_regmix_pair_imports_512_runs_with_clean_names_and_exact_values(db_url, regmix_dir):
    report = ingest_files("pile", regmix_paths(regmix_dir), url=db_url)
    assert (report.format, report.runs_added, report.domains, report.targets) == ("regmix-pair", 512, 17, 13)
    assert report.measurements_added == 512 * 13
    domains = [d.name for d in list_domains("pile", url=db_url)]
    targets = [t.name for t in list_targets("pile", url=db_url)]
    assert len(domains) == 17 and len(targets) == 13
    assert {"pile_cc", "github", "arxiv", "wikipedia_en", "dm_mathematics"} <= set(domains)
    assert not [n for n in domains + targets if n.startswith(("train_", "metric/", "the_pile_")) or n.endswith("_val_loss")]
    assert all(t.direction == "lower" for t in list_targets("pile", url=db_url))
    assert any("renormalised" in note for note in report.notes)

    mixture = pd.read_csv(regmix_dir / "train_mixture_1m.csv")
    loss = pd.read_csv(regmix_dir / "train_pile_loss_1m.csv")
    runs = {r.name: r for r in list_runs("pile", url=db_url)}
    for row in (0, 1, 200, 511):
        name = str(mixture["index"][row])
        raw = {c: float(mixture[c][row]) for c in mixture.columns if c != "index"}
        total = sum(raw.values())
        assert runs[name].mixture["pile_cc"] == pytest.approx(raw["train_the_pile_pile_cc"] / total, rel=1e-12)
        assert runs[name].mixture["github"] == pytest.approx(raw["train_the_pile_github"] / total, rel=1e-12)
        loss_row = loss[loss["index"] == int(name)].iloc[0]
        assert runs[name].final["arxiv"] == float(loss_row["metric/the_pile_arxiv_val_loss"])
        assert runs[name].final["pile_cc"] == float(loss_row["metric/the_pile_pile_cc_val_loss"])
        assert runs[name].tokens is None and runs[name].n_measurements == 13
    with session_scope(db_url) as session:
        ds = load_dataset(session, "pile")
    assert ds.mixtures.shape == (512, 17) and ds.final.shape == (512, 13)
    assert abs(ds.mixtures.sum(axis=1) - 1).max() < 1e-12


def test_reimport_adds_nothing_and_says_so(db_url, regmix_dir):
    ingest_files("pile", regmix_paths(regmix_dir), url=db_url)
    before = table_counts(db_url)
    again = ingest_files("pile", list(reversed(regmix_paths(regmix_dir))), url=db_url)
    assert again.already_imported and again.runs_added == 0 and again.measurements_added == 0
    assert "already imported" in again.summary()
    assert table_counts(db_url) == before


def test_same_runs_in_a_different_file_add_nothing(db_url, tmp_path):
    ingest_files("p", [tidy_csv(tmp_path)], url=db_url)
    before = table_counts(db_url)
    reordered = tidy_csv(tmp_path, "\n".join(reversed(open(tidy_csv(tmp_path)).read().strip().splitlines()[1:])), "x.csv")
    header = open(tmp_path / "runs.csv").readline()
    write(reordered, header + reordered.read_text() + "\n")
    report = ingest_files("p", [reordered], url=db_url)
    assert report.already_imported and report.runs_unchanged == 2 and report.measurements_added == 0
    assert table_counts(db_url) == before


def test_olmix_swarm_pair_is_recognised_without_flags(db_url, tmp_path):
    ratios_path, metrics_path = olmix_pair(tmp_path)
    report = ingest_files("swarm", [metrics_path, ratios_path], url=db_url)
    assert (report.format, report.runs_added, report.domains, report.targets) == ("olmix-pair", 6, 3, 2)
    assert [d.name for d in list_domains("swarm", url=db_url)] == ["dclm:health", "dclm:science", "arxiv"]
    assert [(t.name, t.direction) for t in list_targets("swarm", url=db_url)] == [
        ("arc_easy:rc::olmes", "lower"), ("hellaswag:rc::olmes", "lower")]
    ratios, metrics = pd.read_csv(ratios_path, index_col=0), pd.read_csv(metrics_path, index_col=0)
    runs = {r.name: r for r in list_runs("swarm", url=db_url)}
    assert set(runs) == set(ratios["run"])
    for i in (0, 5):
        run = runs[ratios["run"][i]]
        assert run.mixture["dclm:science"] == pytest.approx(float(ratios["dclm:science"][i]), rel=1e-12)
        assert run.final["hellaswag:rc::olmes"] == float(metrics["hellaswag:rc::olmes"][i])
        assert run.provenance == {"display_name": ratios["name"][i]}
        assert "index" not in run.mixture and "name" not in run.mixture


def test_olmix_halves_told_apart_by_content_when_names_say_nothing(sqlite_url, tmp_path):
    ratios_path, metrics_path = olmix_pair(tmp_path)
    a, b = ratios_path.rename(tmp_path / "a.csv"), metrics_path.rename(tmp_path / "b.csv")
    report = ingest_files("swarm", [b, a], url=sqlite_url)
    assert report.format == "olmix-pair" and report.runs_added == 6


def test_olmix_pair_saved_without_the_pandas_index(sqlite_url, tmp_path):
    ratios_path, metrics_path = olmix_pair(tmp_path)
    for path in (ratios_path, metrics_path):
        pd.read_csv(path, index_col=0).to_csv(path, index=False)
    report = ingest_files("swarm", [ratios_path, metrics_path], url=sqlite_url)
    assert (report.format, report.runs_added, report.domains, report.targets) == ("olmix-pair", 6, 3, 2)


def test_tidy_csv_with_checkpoints_and_provenance(db_url, tmp_path):
    report = ingest_files("tidy", [tidy_csv(tmp_path)], url=db_url)
    assert (report.format, report.runs_added, report.domains, report.targets, report.measurements_added) == (
        "tidy-csv", 2, 2, 3, 12)
    assert any("provenance" in n and "lr" in n for n in report.notes)
    runs = {r.name: r for r in list_runs("tidy", url=db_url)}
    assert runs["r1"].mixture == {"web": 0.7, "code": 0.3}
    assert runs["r1"].tokens == 2000 and runs["r1"].model_params == 1_000_000 and runs["r1"].seed == 1
    assert runs["r1"].provenance == {"lr": 0.001}
    assert runs["r2"].final == {"web": 3.6, "code": 2.0, "arc": 0.30}
    assert {t.name: t.direction for t in list_targets("tidy", url=db_url)} == {"web": "lower", "code": "lower", "arc": "higher"}
    curves = learning_curves("tidy", url=db_url)
    assert len(curves) == 12 and has_learning_curves("tidy", url=db_url)
    first = [(r, t, k, v) for r, t, k, v in zip(curves.run, curves.target, curves.tokens_seen, curves.value)][:2]
    assert first == [("r1", "web", 1000.0, 3.5), ("r1", "web", 2000.0, 3.1)]


def test_tidy_csv_with_explicit_roles(db_url, tmp_path):
    path = write(tmp_path / "custom.csv", "name,step_tokens,size,frac_a,frac_b,score_a,bpb\n"
                 "x,10,5,0.5,0.5,0.7,1.2\ny,10,5,0.1,0.9,0.6,1.1\n")
    roles = ColumnRoles(run_id="name", tokens="step_tokens", model_params="size", mixture=("frac_a", "frac_b"),
                        metrics=("score_a", "bpb"), higher_is_better=("score_a",))
    report = ingest_files("custom", [path], url=db_url, roles=roles)
    assert report.runs_added == 2 and report.domains == 2 and report.targets == 2
    assert {t.name: t.direction for t in list_targets("custom", url=db_url)} == {"score_a": "higher", "bpb": "lower"}
    runs = {r.name: r for r in list_runs("custom", url=db_url)}
    assert runs["y"].mixture == {"frac_a": 0.1, "frac_b": 0.9} and runs["y"].model_params == 5


def test_jsonl_runs_with_measurements(db_url, tmp_path):
    report = ingest_files("j", [jsonl(tmp_path)], url=db_url)
    assert (report.format, report.runs_added, report.targets, report.measurements_added) == ("jsonl", 2, 1, 3)
    runs = {r.name: r for r in list_runs("j", url=db_url)}
    assert runs["a"].model_params == 2_000_000 and runs["a"].tokens == 4000 and runs["a"].seed == 3
    assert runs["a"].provenance == {"optimizer": "adamw"}
    assert runs["a"].final == {"val_loss": 3.0}
    assert runs["b"].mixture == {"web": 1.0}


def test_runs_split_across_chunks_are_merged(db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "ROWS_PER_CHUNK", 3)
    rows = ["run_id,tokens,mix:a,mix:b,loss:a"]
    for step in range(1, 5):
        rows += [f"r{i},{step * 100},0.5,0.5,{5 - step + i / 10}" for i in range(4)]
    report = ingest_files("chunks", [write(tmp_path / "c.csv", "\n".join(rows) + "\n")], url=db_url)
    assert report.runs_added == 4 and report.measurements_added == 16
    assert {r.name: r.tokens for r in list_runs("chunks", url=db_url)} == {f"r{i}": 400 for i in range(4)}


def test_pair_streams_in_chunks(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setattr(pairs, "RUNS_PER_CHUNK", 2)
    ratios_path, metrics_path = olmix_pair(tmp_path, n=7)
    assert ingest_files("s", [ratios_path, metrics_path], url=sqlite_url).runs_added == 7


def test_later_checkpoints_extend_existing_runs(db_url, tmp_path):
    ingest_files("p", [tidy_csv(tmp_path, "run_id,tokens,mix:a,loss:a\nr1,100,1,3.0\n")], url=db_url)
    report = ingest_files("p", [tidy_csv(tmp_path, "run_id,tokens,mix:a,loss:a\nr1,100,1,3.0\nr1,200,1,2.5\n", "b.csv")], url=db_url)
    assert report.runs_added == 0 and report.runs_unchanged == 1 and report.measurements_added == 1
    assert any("gained new measurements" in n for n in report.notes)


def test_domain_metadata_csv_and_yaml(db_url, tmp_path):
    ingest_files("p", [tidy_csv(tmp_path)], url=db_url)
    meta = write(tmp_path / "domains.csv", "domain,unique_tokens,license,data_path\nweb,1.5B,cc-by,/data/web\ncode,2e8,mit,\n")
    report = ingest_files("p", [meta], url=db_url)
    assert report.format == "domain-metadata" and report.domains == 2
    info = {d.name: d for d in list_domains("p", url=db_url)}
    assert info["web"].unique_tokens == 1_500_000_000 and info["web"].tags == {"license": "cc-by"}
    assert info["web"].data_path == "/data/web" and info["code"].unique_tokens == 200_000_000
    yaml_path = write(tmp_path / "domains.yaml", "domains:\n  code:\n    unique_tokens: 3M\n    tags: {quality: high}\n")
    ingest_files("p", [yaml_path], url=db_url)
    code = {d.name: d for d in list_domains("p", url=db_url)}["code"]
    assert code.unique_tokens == 3_000_000 and code.tags == {"license": "mit", "quality": "high"}
    set_domain_metadata("p", "code", unique_tokens="4M", tags=["noncommercial", "license=apache"], data_path="/c", url=db_url)
    code = {d.name: d for d in list_domains("p", url=db_url)}["code"]
    assert code.unique_tokens == 4_000_000 and code.data_path == "/c"
    assert code.tags == {"license": "apache", "quality": "high", "noncommercial": True}


def test_runs_and_metadata_in_one_import(sqlite_url, tmp_path):
    meta = write(tmp_path / "m.yaml", "web: {unique_tokens: 10M}\n")
    report = ingest_files("p", [meta, tidy_csv(tmp_path)], url=sqlite_url)
    assert report.format == "tidy-csv+domain-metadata" and report.runs_added == 2
    assert {d.name: d.unique_tokens for d in list_domains("p", url=sqlite_url)}["web"] == 10_000_000


def test_uploads_name_the_users_file(sqlite_url, tmp_path):
    report = ingest_uploads("up", [("my runs.csv", (tidy_csv(tmp_path)).read_bytes())], url=sqlite_url)
    assert report.files == ["my runs.csv"] and report.runs_added == 2
    assert list_runs("up", url=sqlite_url)[0].source_file == "my runs.csv"
    with pytest.raises(Exception) as info:
        ingest_uploads("up", [("broken data.csv", b"run_id,mix:a,loss:a\nr9,1,abc\n")], url=sqlite_url)
    assert "broken data.csv, line 2, column 'loss:a'" in str(info.value)


def test_csv_written_by_excel_with_bom_and_crlf(sqlite_url, tmp_path):
    text = "\ufeffrun_id,mix:a,mix:b,loss:a\r\nr1,0.5,0.5,3.0\r\n"
    report = ingest_files("p", [write(tmp_path / "excel.csv", text.encode("utf-8"))], url=sqlite_url)
    assert report.runs_added == 1 and list_runs("p", url=sqlite_url)[0].name == "r1"


def test_quoted_cells_keep_line_numbers(sqlite_url, tmp_path):
    path = tmp_path / "q.csv"
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["run_id", "mix:a", "loss:a", "note"])
        out.writerow(["r1", "1", "3.0", "two\nlines"])
        out.writerow(["r2", "1", "oops", ""])
    with pytest.raises(Exception) as info:
        ingest_files("p", [path], url=sqlite_url)
    assert "line 4" in str(info.value) and "column 'loss:a'" in str(info.value)
