"""AppTest of the Next runs page: suggest (a job), pending runs, downloads, train one here, the loop closes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from engine.services.fits import fit_project
from engine.services.ingest import ingest_files
from engine.services.jobs import list_jobs
from engine.services.next_runs import list_pending, rounds
from engine.services.training import prepare

PAGE = Path(__file__).resolve().parents[2] / "app" / "pages" / "next_runs.py"
TIMEOUT_SECONDS = 240


def loop_project(tmp_path: Path) -> str:
    """Runs on two domains whose names match a small prepared corpus, so a pending run can be trained here."""
    rng = np.random.default_rng(0)
    lines = ["run_id,tokens,mix:alpha,mix:beta,loss:alpha,loss:beta"]
    for i, p in enumerate(rng.dirichlet(np.ones(2), 16)):
        lines.append(f"r{i},2048,{p[0]:.6f},{p[1]:.6f},{3 + np.exp(-2 * p[0]) + rng.normal(0, .01):.5f},"
                     f"{3 + np.exp(-2 * p[1]) + rng.normal(0, .01):.5f}")
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    ingest_files("loop", [tmp_path / "runs.csv"])
    fit_project("loop", laws=["exponential"], folds=3, bootstrap=8)
    return "loop"


def prepared_folder(tmp_path: Path) -> str:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sources = {}
    for name, text in {"alpha": "abc abd abe " * 80, "beta": "0123 4567 89 " * 80}.items():
        (corpus / f"{name}.jsonl").write_text("".join(json.dumps({"text": f"{i} {text}"}) + "\n" for i in range(5)))
        sources[name] = [str(corpus / f"{name}.jsonl")]
    prepare(tmp_path / "prep", sources, val_fraction=0.3)
    return str(tmp_path / "prep")


def settle(at: AppTest, project: str, kinds=None) -> AppTest:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while list_jobs(project, live_only=True, kinds=kinds):
        assert time.monotonic() < deadline, "jobs still running"
        time.sleep(0.3)
    at.run()
    assert not at.exception, at.exception
    return at


def test_suggest_download_train_here_and_the_plan_moves(tmp_path):
    project = loop_project(tmp_path)
    data = prepared_folder(tmp_path)
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_SECONDS)
    at.session_state["project"] = project
    at.run()
    assert not at.exception, at.exception
    assert any("No suggested runs yet" in i.value for i in at.info)
    at = settle(at, project)
    before = next(m.value for m in at.metric if m.label.startswith("Plan at"))

    at.number_input(key="next_n").set_value(2)
    next(b for b in at.button if b.label == "Suggest runs").click().run()
    assert not at.exception, at.exception
    at = settle(at, project)
    pending = list_pending(project)
    assert [p.name for p in pending] == ["next-r1-01", "next-r1-02"] and all(p.state == "pending" for p in pending)
    table = next(df.value for df in at.dataframe if "why" in df.value.columns)
    assert list(table["run"]) == ["next-r1-01", "next-r1-02"]

    downloads = {d.label: d for d in at.get("download_button")}
    assert set(downloads) == {"CSV (run_id, tokens, shares)", "mixplan trainer specs (YAML)",
                              "Shell script (mixplan train)"}

    # Train one here, tiny, in the background: it completes its pending row and the plan refreshes.
    at.text_input(key="next_data_dir").set_value(data).run()
    assert not at.exception, at.exception
    next(m for m in at.multiselect if m.label == "Pending runs to train").set_value(["next-r1-01"])
    next(t for t in at.text_input if t.label == "Tokens per run").set_value("1024")
    from engine.train.ray_executor import ray_available

    where = at.radio(key="next_executor")  # like the Train page: local, or Ray where the extra is installed
    assert where.value == "local" and list(where.options) == (["local", "ray"] if ray_available() else ["local"])
    next(b for b in at.button if b.label == "Train them here").click().run()
    assert not at.exception, at.exception
    assert any("Training 1 run(s)" in s.value for s in at.success)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not any(j.kind == "sweep" and not j.live for j in list_jobs(project)):
        assert time.monotonic() < deadline, [(j.kind, j.state, j.error) for j in list_jobs(project)]
        time.sleep(1)
    at.run()
    assert not at.exception, at.exception
    # The trainer completed its run itself when it ended: the page still says the result arrived (it compares
    # the states it showed last; counting only what its own matching completed missed it, and the journey hung).
    assert any("Results arrived for next-r1-01" in s.value for s in at.success), [s.value for s in at.success]
    at = settle(at, project)
    # still there after the refreshed plan's job ended and reran the page (it was gone after one rerun)
    assert any("Results arrived for next-r1-01" in s.value for s in at.success), [s.value for s in at.success]
    by_name = {p.name: p for p in list_pending(project)}
    assert by_name["next-r1-01"].state == "done" and by_name["next-r1-01"].run == "next-r1-01"
    assert by_name["next-r1-02"].state == "pending"
    assert next(m.value for m in at.metric if m.label == "Runs in the project") == "17"
    assert [r.label for r in rounds(project)][0] == "round 1"
    assert before  # the plan metric was shown before and after
    assert any("How the plan moved" in h.value for h in at.subheader)



def test_imported_results_are_announced_once(tmp_path):
    """Uploading a pending run's result names it in one message; the page's rerun does not announce it again."""
    from engine.services.next_runs import suggest_pending

    project = loop_project(tmp_path)
    pending = suggest_pending(project, 2048, 2)
    first = pending[0]
    shares = [first.mixture.get("alpha", 0.0), first.mixture.get("beta", 0.0)]
    result = (f"run_id,tokens,mix:alpha,mix:beta,loss:alpha,loss:beta\n"
              f"{first.name},2048,{shares[0]:.6f},{shares[1]:.6f},3.5,3.6\n").encode()
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_SECONDS)
    at.session_state["project"] = project
    at.run()
    assert not at.exception, at.exception
    at.file_uploader(key="next_upload").set_value(("results.csv", result, "text/csv"))
    next(b for b in at.button if b.label == "Import results").click().run()
    assert not at.exception, at.exception
    messages = [s.value for s in at.success]
    assert sum(first.name in m for m in messages) == 1, messages
    assert any(m.startswith("Imported") and "Results arrived for" in m and ".." not in m for m in messages), messages
    states = {p.name: p.state for p in list_pending(project)}
    assert states == {first.name: "done", pending[1].name: "pending"}
    at = settle(at, project)  # and not on the page's next run either (its plan job ended first)
    assert not any(first.name in s.value for s in at.success), [s.value for s in at.success]
