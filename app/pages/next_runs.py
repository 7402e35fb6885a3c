"""Next runs: suggested proxy runs as stored pending runs; run them here or elsewhere; results close the loop.

Suggesting is a job (it plans first); training them here starts the trainer as a
detached process (a sweep job); results, trained here or uploaded, complete the
pending runs they match (by id, else by mixture) and the plan moves. The chart
shows each round's plan: its predicted objective and the width of its interval.
"""

from __future__ import annotations

import time

import altair as alt
import pandas as pd
import streamlit as st

from app.ui.cache import cached_data_hash, cached_defaults, database_url, forget_cached_data
from app.ui.errors import show_error
from app.ui.jobs import executor_choice, job_status, loader, runner, show_failure
from app.ui.state import flash, link, require_project, show_flash
from app.ui.style import number, tokens
from app.ui.text import plain
from engine.errors import MixplanError
from engine.counts import parse_count
from engine.plan.constraints import Constraints
from engine.services import next_runs
from engine.services.ingest import ingest_uploads
from engine.services.jobs import job_key, last_result, latest_job, list_jobs, live_job, request_cancel
from engine.services.tasks import plan_from_result, plan_settings, plan_work, suggest_work
from engine.services.training import default_data_dir, launch_background
from engine.train.data import read_prepared

TOP_DOMAINS = 8
LAUNCH_GRACE_SECONDS = 30  # a trainer process needs a few seconds to create its job row
ARRIVED_SHOWN_SECONDS = 60  # how long "Results arrived" stays up across the page's reruns

project = require_project()
url = database_url()
st.title("Next runs")
st.caption("Proxy runs that would most narrow the plan's interval: suggest them, run them here or on your cluster, "
           "upload the results, and watch the plan settle round by round.")
show_flash()

try:
    # Results arrived since this session last showed the pending runs: matched here now, or already matched by
    # whoever stored them (the trainer completes its own runs when it ends, an upload or the CLI theirs), which
    # is why the page compares states instead of counting only what its own match_results completed.
    completed = next_runs.match_results(project, url=url)
    seen_project, seen = st.session_state.get("next_seen", (None, {}))
    if seen_project == project:
        completed += [p.name for p in next_runs.list_pending(project, states=("done",), url=url)
                      if seen.get(p.name) in next_runs.PENDING_STATES and p.name not in completed]
    if time.monotonic() - st.session_state.get("next_launched_at", 0.0) > LAUNCH_GRACE_SECONDS:
        next_runs.reopen_stopped(project, url=url)  # a training that died leaves its runs to pick again
    if completed:
        forget_cached_data()
        st.session_state["next_arrived"] = (project, completed, time.monotonic())
    # Kept on screen a while: the refreshed plan's job ends a moment later and reruns the page, which would
    # otherwise take the message away before anyone read it (the journey test missed it that way, once).
    arrived = st.session_state.get("next_arrived")
    if arrived and arrived[0] == project and time.monotonic() - arrived[2] < ARRIVED_SHOWN_SECONDS:
        st.success(f"Results arrived for {', '.join(arrived[1])}: the plan below uses them.",
                   icon=":material/check_circle:")
    data_hash = cached_data_hash(project, url)
    defaults = cached_defaults(project, url, data_hash, 4.0)
except MixplanError as error:
    show_error(error)
    st.stop()
if defaults.n_runs == 0:
    st.info("This project has no runs yet: the suggestions start from a fitted plan.", icon=":material/upload:")
    link("pages/upload.py", label="Upload runs", icon=":material/upload:")
    st.stop()

# -- the plan now, at the default settings (a job when the data changed) ---------------------------
settings = plan_settings(defaults.objective, defaults.budget_tokens, Constraints(max_epochs=defaults.max_epochs))
key = job_key("plan", project, settings, data_hash)
plan_job, plan_stale = last_result(project, "plan", key, url=url)
live = live_job(key, url=url)
if live is None and (plan_job is None or plan_stale):
    newest = latest_job(key, url=url)
    if newest is None or newest.state == "done":
        runner().submit(project, "plan", settings, plan_work(project, settings, loader(url, data_hash), url=url),
                        data_hash=data_hash, url=url)
        live = live_job(key, url=url)
    else:
        show_failure(newest, what="Planning")
if live is not None:
    job_status(live.id, url, key="next_plan_job")
if plan_job is not None:
    plan = plan_from_result(plan_job.result)
    lo, hi = plan.recommended.objective_interval
    cols = st.columns(3)
    cols[0].metric(f"Plan at {tokens(plan.budget_tokens)} tokens", number(plan.recommended.objective, 4),
                   help="Predicted objective of the recommended mixture (default settings of the Plan page).")
    cols[1].metric("90% interval width", number(hi - lo, 3))
    cols[2].metric("Runs in the project", defaults.n_runs)
    if plan_stale:
        st.caption("Shown: the plan before the newest results; the refreshed plan replaces it when its job ends.")

# -- rounds ------------------------------------------------------------------------------------------
history = next_runs.rounds(project, url=url)
if history:
    st.subheader("How the plan moved, round by round")
    frame = pd.DataFrame([{"round": r.label, "order": r.round, "predicted objective": r.predicted,
                           "interval width": r.interval_width, "runs": r.runs, "done": r.done} for r in history])
    base = alt.Chart(frame).encode(x=alt.X("round:N", sort=alt.SortField("order"), title="round (the plan it started from)"))
    left = base.mark_line(point=True, color="#d62728").encode(
        y=alt.Y("predicted objective:Q", scale=alt.Scale(zero=False), title="predicted objective (loss)"),
        tooltip=["round", alt.Tooltip("predicted objective:Q", format=".4f"), "runs", "done"])
    right = base.mark_bar(opacity=0.35, color="#1f77b4").encode(
        y=alt.Y("interval width:Q", title="90% interval width"),
        tooltip=["round", alt.Tooltip("interval width:Q", format=".4f")])
    st.altair_chart(alt.layer(right, left).resolve_scale(y="independent").properties(height=220), width="stretch")
    st.caption("Line: the plan's predicted objective when the round was suggested ('now': the newest plan). "
               "Bars: the width of its 90% interval; results from a round should narrow the next one.")

# -- suggest -------------------------------------------------------------------------------------------
st.subheader("Suggest")
with st.form("suggest_form"):
    cols = st.columns(3)
    n = cols[0].number_input("How many runs", min_value=1, max_value=64, value=4, key="next_n")
    budget_text = cols[1].text_input("For the plan at (tokens)", value=tokens(defaults.budget_tokens), key="next_budget",
                                     help=f"Default: {defaults.budget_reason}.")
    cols[2].caption(f"Proxy runs are trained at the proxy scale: {tokens(defaults.proxy_tokens)} tokens.")
    asked = st.form_submit_button("Suggest runs", type="primary")
if asked:
    try:
        budget = parse_count(budget_text, what="a budget", flag="--budget")
    except MixplanError as error:
        show_error(error)
    else:
        s_settings = plan_settings(defaults.objective, budget, Constraints(max_epochs=defaults.max_epochs))
        job_id, _ = runner().submit(project, "suggest", {**s_settings, "n": int(n), "round_after": len(history)},
                                    suggest_work(project, s_settings, int(n), loader(url, data_hash), url=url),
                                    data_hash=data_hash, url=url)
        st.session_state["next_suggest_job"] = job_id
suggest_jobs = list_jobs(project, kinds=("suggest",), limit=1, url=url)
if suggest_jobs and suggest_jobs[0].live:
    job_status(suggest_jobs[0].id, url, key="suggest_job")
elif suggest_jobs and st.session_state.get("next_suggest_job") == suggest_jobs[0].id:
    show_failure(suggest_jobs[0], what="Suggesting")

# -- pending runs ----------------------------------------------------------------------------------------
pending = next_runs.list_pending(project, url=url)
st.session_state["next_seen"] = (project, {p.name: p.state for p in pending})
st.subheader("Pending and finished suggestions")
if not pending:
    st.info("No suggested runs yet: ask for some above.", icon=":material/science:")
    st.stop()
search = st.text_input("Search runs", placeholder="run name, state or domain", key="next_search")
rows = next_runs.pending_frame_rows(pending, top=TOP_DOMAINS)
table = pd.DataFrame(rows)
if search.strip():
    needle = search.strip().lower()
    table = table[table.apply(lambda r: needle in " ".join(map(str, r.values)).lower(), axis=1)]
share_columns = [c for c in table.columns if c not in ("run", "round", "state", "result run", "tokens", "why")]
st.dataframe(table, hide_index=True, width="stretch", key="next_pending_table",
             column_config={"tokens": st.column_config.NumberColumn("tokens", format="compact"),
                            **{c: st.column_config.NumberColumn(c, format="percent") for c in share_columns}})
open_runs = [p for p in pending if p.state == "pending"]
running = [p.name for p in pending if p.state == "running"]
st.caption(f"{len(open_runs)} pending: {', '.join(p.name for p in open_runs) or 'none'}"
           + (f" · training: {', '.join(running)}" if running else "")
           + f" · {sum(p.state == 'done' for p in pending)} done.")

tab_here, tab_elsewhere = st.tabs(["Run here", "Run elsewhere"])
with tab_here:
    data_dir = st.text_input("Prepared data folder", value=str(default_data_dir()), key="next_data_dir",
                             help="A folder made by `mixplan prepare-data` (the Train page builds a demo corpus).")
    try:
        prepared = read_prepared(data_dir)
    except MixplanError as error:
        prepared = None
        st.info(f"{plain(error)} Build one on the **Train** page.")
        link("pages/train.py", label="Train page", icon=":material/model_training:")
    if prepared is not None and open_runs:
        with st.form("run_here"):
            # Keyed on the open runs: when one finishes, the choice starts again from the next one.
            chosen = st.multiselect("Pending runs to train", [p.name for p in open_runs],
                                    default=[open_runs[-1].name], key=f"next_chosen_{len(open_runs)}")
            cols = st.columns(2)
            tokens_text = cols[0].text_input("Tokens per run", value=tokens(open_runs[-1].budget_tokens),
                                             help="The proxy scale by default; fewer for a quick look.")
            model = cols[1].selectbox("Model", ["micro", "tiny", "small"], index=0)
            executor = executor_choice("next_executor")
            go = st.form_submit_button("Train them here", type="primary")
        if go and chosen:
            args = ["train-pending", "--project", project, "--data", data_dir, "--names", ",".join(chosen),
                    "--model", model, "--tokens", tokens_text, "--executor", executor]
            try:
                pid, log_path = launch_background(args, url=url)
            except OSError as error:
                flash("error", f"could not start the trainer: {error}")
            else:
                next_runs.mark_running(project, chosen, url=url)
                st.session_state["next_launched_at"] = time.monotonic()
                flash("success", f"Training {len(chosen)} run(s) in the background (process {pid}).")
            st.rerun()
    elif prepared is not None:
        st.caption("Every suggested run is running or done.")

    shown = st.session_state["next_seen"][1]  # the states this run shows
    page_run = [True]

    @st.fragment(run_every=2.0)
    def trainings() -> None:
        """Training progress; when a pending run changes state (its result arrived, whoever matched it, or its
        training stopped) the whole page reruns and says which results arrived. Only the fragment's own polls
        rerun it (see app.ui.jobs.job_status: a rerun inside the page's run would drop a click below)."""
        drawn_by_page, page_run[0] = page_run[0], False
        next_runs.match_results(project, url=url)
        if not drawn_by_page and {p.name: p.state for p in next_runs.list_pending(project, url=url)} != shown:
            st.rerun()
        jobs = list_jobs(project, kinds=("train", "sweep"), live_only=True, limit=10, url=url)
        for job in jobs:
            cols = st.columns([5, 1])
            cols[0].progress(min(max(job.progress, 0.0), 1.0), text=f"training ({job.kind} job {job.id}): {job.state}")
            if job.kind == "sweep" and cols[1].button("Cancel", key=f"next_cancel_{job.id}",
                                                      disabled=job.cancel_requested):
                request_cancel(job.id, url=url)

    trainings()

with tab_elsewhere:
    st.caption("Download the runs, train them on your cluster, then upload the logs below: a run matches its "
               "pending row by its id (run_id), else by its mixture.")
    cols = st.columns(3)
    chosen_runs = open_runs or pending
    cols[0].download_button("CSV (run_id, tokens, shares)", next_runs.pending_csv(chosen_runs),
                            file_name="pending_runs.csv", mime="text/csv", key="next_dl_csv", on_click="ignore")
    cols[1].download_button("mixplan trainer specs (YAML)",
                            next_runs.pending_trainer_config(chosen_runs, project=project),
                            file_name="pending_runs.yaml", key="next_dl_yaml", on_click="ignore")
    cols[2].download_button("Shell script (mixplan train)", next_runs.pending_commands(chosen_runs, project=project),
                            file_name="pending_runs.sh", key="next_dl_sh", on_click="ignore")
    with st.form("upload_results"):
        files = st.file_uploader("Results (any format the Upload page reads)", accept_multiple_files=True,
                                 key="next_upload")
        sent = st.form_submit_button("Import results")
    if sent and files:
        try:
            report = ingest_uploads(project, [(f.name, f.getvalue()) for f in files], url=url)
        except MixplanError as error:
            show_error(error, nothing_changed=True)
        else:
            forget_cached_data()
            done = next_runs.match_results(project, url=url)
            # Said once, here: the next run must not announce the same runs again as results that arrived.
            st.session_state["next_seen"] = (project, {**st.session_state["next_seen"][1], **dict.fromkeys(done, "done")})
            flash("success", f"Imported: {report.summary().rstrip('.')}. " + (
                f"Results arrived for {', '.join(done)}: the plan below uses them." if done else
                "No pending run matched them (a result matches by its run_id, else by its mixture)."))
            st.rerun()
