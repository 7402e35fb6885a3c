"""Train: launch a sweep or an Aioli run on a prepared data folder; live progress from the job rows.

Every launch starts a detached ``mixplan`` process, so the work survives page
reloads and never runs in the Streamlit thread; the jobs table polls the store.
"""

from __future__ import annotations


import pandas as pd
import streamlit as st

from app.ui.cache import forget_cached_data
from app.ui.errors import show_error
from app.ui.jobs import executor_choice
from app.ui.state import flash, require_project, show_flash
from app.ui.train_charts import jobs_frame, trajectory_chart
from app.ui.text import plain
from engine.counts import parse_counts, parse_whole_count
from engine.errors import MixplanError
from engine.services.training import (
    aioli_trajectories,
    default_data_dir,
    launch_background,
    list_jobs,
    server_data_path,
)
from engine.train.data import read_prepared
from engine.train.jobs import process_alive
from engine.train.model import MODEL_SIZES

project = require_project()
st.title("Train")
st.caption(
    "Run proxy trainings with mixplan's own small GPT (CPU, or CUDA with bf16 when present). "
    "Each run's per-domain validation losses land in this project as they are measured; "
    "the **Runs** page shows them."
)
show_flash()


def _launch(args: list[str], what: str) -> None:
    try:
        pid, log_path = launch_background(args)
    except OSError as error:
        flash("error", f"could not start {what}: {error}")
        return
    if args[0] == "demo-corpus":
        st.session_state["_train_corpus_pid"] = pid
    flash("success", f"Started {what} (process {pid}; log: {log_path}). Progress appears below.")


data_text = st.text_input(
    "Prepared data folder", value=default_data_dir().name, key="train_data_dir",
    help="A folder under the server's data root (MIXPLAN_DATA_ROOT), made by `mixplan prepare-data --out DIR ...`.",
)
try:
    data_dir = str(server_data_path(data_text))
except MixplanError as error:
    show_error(error)
    st.stop()
try:
    prepared = read_prepared(data_dir)
except MixplanError as error:
    prepared = None
    building = st.session_state.get("_train_corpus_pid")
    if building is None:
        st.info(plain(error))
        if st.button("Build the demo corpus here", help="Python's own sources, docs and licence texts, "
                     "tokenised into this folder (runs in the background, a few seconds)."):
            _launch(["demo-corpus", "--out", str(server_data_path("demo-corpus")), "--prepare-into", data_dir,
                     "--project", project], "the demo corpus")
            st.rerun()
    else:
        @st.fragment(run_every=1.0)
        def wait_for_corpus() -> None:
            """Poll the folder: the page switches to the sweep forms as soon as the corpus is there."""
            try:
                read_prepared(data_dir)
            except MixplanError:
                if process_alive(building):
                    st.info(f"Building the demo corpus (process {building})…", icon=":material/hourglass:")
                else:
                    st.session_state.pop("_train_corpus_pid", None)
                    st.error("Building the demo corpus stopped before the folder was ready; see its log in "
                             "MIXPLAN_HOME/logs.", icon=":material/error:")
                return
            st.session_state.pop("_train_corpus_pid", None)
            st.rerun()

        wait_for_corpus()

if prepared is not None:
    st.dataframe(
        pd.DataFrame([{"domain": d.name, "unique (train) tokens": d.train_tokens, "validation tokens": d.val_tokens,
                       "documents": d.train_documents + d.val_documents} for d in prepared.domains.values()]),
        hide_index=True, width="stretch",
    )
    sweep_tab, aioli_tab = st.tabs(["Sweep of static mixtures", "Aioli vs stratified"])
    sizes = list(MODEL_SIZES)
    with sweep_tab, st.form("sweep_form"):
        cols = st.columns(4)
        n = cols[0].number_input("Mixtures", 2, 512, 12, help="Each is trained at every budget.")
        budgets = cols[1].text_input("Budgets (tokens)", "60k,200k", help="Comma-separated, e.g. 250k,1M.")
        model = cols[2].selectbox("Model", sizes, index=sizes.index("micro"))
        workers = cols[3].number_input("Worker processes", 1, 64, 1)
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="sweep_seed")
        executor = executor_choice("sweep_executor")
        if st.form_submit_button("Launch sweep", type="primary"):
            try:
                parse_counts(budgets, flag="Budgets")
            except MixplanError as error:
                show_error(error)
            else:
                _launch(["sweep", "--project", project, "--data", data_dir, "--n", str(n), "--budgets", budgets,
                         "--model", model, "--workers", str(workers), "--seed", str(seed), "--prefix", "ui",
                         "--executor", executor],
                        f"a sweep of {n} mixtures")
                st.rerun()
    with aioli_tab, st.form("aioli_form"):
        cols = st.columns(4)
        tokens = cols[0].text_input("Tokens", "200k")
        model = cols[1].selectbox("Model", sizes, index=sizes.index("micro"), key="aioli_model")
        rounds = cols[2].number_input("Rounds", 1, 100, 4)
        lp_steps = cols[3].number_input("Steps per sub-run", 1, 1000, 4)
        cols = st.columns(3)
        eta = cols[0].number_input("Step size eta", 0.01, 100.0, 1.0)
        one_hot = cols[1].number_input("One-hot factor", 0.05, 1.0, 1.0)
        seed = cols[2].number_input("Seed", 0, 2**31 - 1, 0, key="aioli_seed")
        baseline = st.checkbox("Also run the stratified (uniform) baseline", value=True)
        if st.form_submit_button("Launch Aioli", type="primary"):
            try:
                parse_whole_count(tokens, flag="Tokens")
            except MixplanError as error:
                show_error(error)
            else:
                common = ["--project", project, "--data", data_dir, "--tokens", tokens, "--model", model,
                          "--seed", str(seed)]
                _launch(["train", *common, "--method", "aioli", "--aioli-rounds", str(rounds),
                         "--aioli-lp-steps", str(lp_steps), "--aioli-eta", str(eta), "--aioli-one-hot", str(one_hot)],
                        "an Aioli run")
                if baseline:
                    _launch(["train", *common, "--method", "stratified"], "the stratified baseline")
                st.rerun()


@st.fragment(run_every=2)
def live_jobs() -> None:
    jobs = list_jobs(project, limit=100)
    st.subheader("Jobs")
    if not jobs:
        st.info("No training jobs in this project yet.")
        return
    finished = sum(j.state in ("done", "failed") for j in jobs)
    if st.session_state.get("_train_finished") not in (None, finished):
        forget_cached_data()  # new results: the Runs page reads the store again
    st.session_state["_train_finished"] = finished
    running = sum(j.state == "running" for j in jobs)
    st.caption(f"{running} running · {finished} finished · refreshed every 2 s")
    st.dataframe(
        jobs_frame(jobs), hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
    )
    trajectories = aioli_trajectories(project)
    if trajectories:
        st.subheader("Aioli proportions over training")
        st.altair_chart(trajectory_chart(trajectories), width="stretch")


live_jobs()
