"""AppTest of the Train page: it renders, shows jobs from the store, and a launch starts a real background sweep."""

from __future__ import annotations

import json
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from engine.services.projects import create_project
from engine.services.training import default_data_dir, list_jobs, prepare
from engine.train.loop import TrainSpec, train

PAGE = Path(__file__).resolve().parents[2] / "app" / "pages" / "train.py"
TIMEOUT_SECONDS = 120


def open_train_page(project: str) -> AppTest:
    # The page on its own (the project chosen as the Projects page would): it needs nothing else of the app.
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_SECONDS)
    at.session_state["project"] = project
    at.run()
    assert not at.exception, at.exception
    return at


def prepared_folder(tmp_path: Path, project: str) -> str:
    """A prepared folder under the server's data root (where the page may read); returns its path there."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sources = {}
    for name, text in {"alpha": "abc abd abe " * 80, "beta": "0123 4567 89 " * 80}.items():
        (corpus / f"{name}.jsonl").write_text("".join(json.dumps({"text": f"{i} {text}"}) + "\n" for i in range(5)))
        sources[name] = [str(corpus / f"{name}.jsonl")]
    prepare(default_data_dir().parent / "prep", sources, project=project, val_fraction=0.3)
    return "prep"


def test_train_page_shows_jobs_of_the_project(tmp_path):
    create_project("t")
    data = str(default_data_dir().parent / prepared_folder(tmp_path, "t"))
    train(TrainSpec(project="t", data_dir=data, name="shown-run", tokens=2048, model="micro", seq_len=32,
                    mixture={"alpha": 0.5, "beta": 0.5}, evals=2))
    at = open_train_page("t")
    assert at.title[0].value == "Train"
    jobs = next(df.value for df in at.dataframe if "state" in df.value.columns)
    assert list(jobs["run"]) == ["shown-run"] and list(jobs["state"]) == ["done"]
    # The default data folder does not exist yet: the page says so and offers the demo corpus.
    assert any("prepare-data" in info.value for info in at.info)
    assert any(button.label == "Build the demo corpus here" for button in at.button)


def test_launching_a_sweep_runs_in_the_background(tmp_path):
    create_project("t")
    data = prepared_folder(tmp_path, "t")
    at = open_train_page("t")
    at.text_input(key="train_data_dir").set_value("../../elsewhere").run()  # outside the server's data root
    assert any("outside the server's data root" in e.value for e in at.error)
    assert not any(df for df in at.dataframe if "domain" in df.value.columns)
    at.text_input(key="train_data_dir").set_value(data).run()
    assert not at.exception, at.exception
    domains = next(df.value for df in at.dataframe if "domain" in df.value.columns)
    assert sorted(domains["domain"]) == ["alpha", "beta"]
    at.number_input[0].set_value(2)
    at.text_input[1].set_value("1024")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("Started a sweep of 2 mixtures" in s.value for s in at.success)
    deadline = time.monotonic() + 240
    while not any(j.kind == "sweep" and j.state == "done" for j in list_jobs("t")):
        assert time.monotonic() < deadline, [(j.kind, j.state, j.error) for j in list_jobs("t")]
        time.sleep(1)
    at.run()
    jobs = next(df.value for df in at.dataframe if "state" in df.value.columns)
    assert sorted(jobs["state"]) == ["done", "done", "done"]
    assert sorted(jobs["kind"]) == ["sweep", "train", "train"]


def test_the_sweep_form_offers_ray_when_the_extra_is_installed(tmp_path):
    from engine.train.ray_executor import ray_available

    create_project("r")
    data = prepared_folder(tmp_path, "r")
    at = open_train_page("r")
    at.text_input(key="train_data_dir").set_value(data).run()
    assert not at.exception, at.exception
    choice = at.radio(key="sweep_executor")
    assert choice.value == "local"
    assert list(choice.options) == (["local", "ray"] if ray_available() else ["local"])
