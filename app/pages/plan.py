"""Plan: the recommended mixture for a budget, against the baselines, with the budget sweep and exports.

Planning and the sweep are jobs: the page shows the newest stored plan at once
(marked stale when the data or the settings changed) and polls the job that
computes the plan for the settings on screen.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.ui.bounds import parse_bounds
from app.ui.cache import cached_data_hash, cached_defaults, cached_domain_table, cached_law_change, database_url
from app.ui.errors import show_error
from app.ui.jobs import job_status, laws_key, loaded_laws, loader, retry_wanted, runner, show_failure
from app.ui.plan_charts import (epochs_chart, mixture_bars, objective_chart, objective_frame, sweep_chart,
                                sweep_objective_chart)
from app.ui.state import link, require_project
from app.ui.style import difference, notes_markdown, number, share, tokens
from app.ui.text import plain
from engine.errors import MixplanError
from engine.counts import parse_count
from engine.plan.constraints import Constraints
from engine.plan.exports import FORMATS, export
from engine.plan.plan import what_if
from engine.services.jobs import job_key, last_result, latest_job, live_job
from engine.plan.sweep import budget_grid
from engine.services.tasks import (plan_from_result, plan_settings, plan_work, sweep_from_result, sweep_settings,
                                   sweep_work)

EXPORT_FILES = {"json": "plan.json", "yaml": "plan.yaml", "megatron": "megatron_data_path.txt",
                "hf": "interleave_datasets.py", "mosaic": "mosaic_streams.py", "csv": "plan_options.csv"}


def constraints_table(domains: list[str], unique_tokens: list[float], tags: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({
        "domain": domains,
        "unique tokens": [tokens(u) for u in unique_tokens],
        "tags": [", ".join(f"{k}={v}" for k, v in t.items()) for t in tags],
        "min": [None] * len(domains), "max": [None] * len(domains), "fixed": [None] * len(domains),
        "exclude": [False] * len(domains),
    })


def constraints_from(table: pd.DataFrame, exclude_tags: str, max_epochs: float, bounds_text: str = "") -> Constraints:
    """The table's bounds, then the typed ones (they win where both name a domain)."""
    def shares(column: str) -> dict[str, float]:
        return {row.domain: float(row[column]) for _, row in table.iterrows()
                if row[column] is not None and not pd.isna(row[column])}

    lower, upper, fixed = parse_bounds(bounds_text, list(table["domain"]))
    return Constraints(lower=shares("min") | lower, upper=shares("max") | upper, fixed=shares("fixed") | fixed,
                       exclude=tuple(table.loc[table["exclude"].astype(bool), "domain"]),
                       exclude_tags=tuple(t.strip() for t in exclude_tags.split(",") if t.strip()),
                       max_epochs=max_epochs or None)


project = require_project()
url = database_url()
st.title("Plan")
st.caption("The mixture to train on for your token budget, how sure the laws are, and what it beats.")

try:
    data_hash = cached_data_hash(project, url)
    left, middle, right = st.columns(3)
    max_epochs = right.number_input("Epoch cap per domain (0 = none)", min_value=0.0, value=4.0, step=1.0,
                                    key="plan_max_epochs")
    defaults = cached_defaults(project, url, data_hash, max_epochs or 4.0)
except MixplanError as error:
    show_error(error)
    st.stop()
if defaults.n_runs == 0:
    st.info("This project has no runs yet: upload your proxy runs' logs, then come back for the plan.",
            icon=":material/upload:")
    link("pages/upload.py", label="Upload runs", icon=":material/upload:")
    st.stop()

budget_text = left.text_input("Token budget", value=tokens(defaults.budget_tokens), key=f"plan_budget_{project}",
                              help=f"e.g. 300B, 2.5T, 3e11. Default: {defaults.budget_reason}.")
params_text = middle.text_input("Model size (optional)", value="", help="e.g. 1B", key="plan_params")
st.caption(f"Default budget {tokens(defaults.budget_tokens)}: {defaults.budget_reason}.")

info = cached_domain_table(project, url, data_hash)
c1, c2 = st.columns(2)
objectives = ["mean", *info.targets]
objective = c1.selectbox("Objective", objectives, index=objectives.index(defaults.objective), key=f"plan_objective_{project}",
                         help="'mean' of all evaluation targets, or one target.")
form = c2.radio("Repetition model", ["muennighoff", "goyal"], horizontal=True, key="plan_form",
                help="Muennighoff et al. 2023 effective tokens, or Goyal et al. 2024's halving utility.")
bounds_text = st.text_input("Bounds", value="", key=f"plan_bounds_{project}", placeholder="github >= 0.05, web <= 0.4",
                            help="Comma-separated: domain >= share, domain <= share, or domain = share (fixed).")
with st.expander("Constraints per domain", expanded=False):
    table = st.data_editor(constraints_table(info.domains, info.unique_tokens, info.tags),
                           key=f"plan_constraints_{project}", hide_index=True, disabled=["domain", "unique tokens", "tags"],
                           column_config={c: st.column_config.NumberColumn(c, min_value=0.0, max_value=1.0,
                                                                           step=0.01, format="%.3f")
                                          for c in ("min", "max", "fixed")})
    exclude_tags = st.text_input("Exclude domains with tags (comma-separated)", value="",
                                 placeholder="license=noncommercial", key="plan_exclude_tags")

try:
    budget = parse_count(budget_text, what="a budget", flag="--budget")
    params = parse_count(params_text, what="a model size", flag="--params") if params_text.strip() else None
    constraints = constraints_from(table, exclude_tags, max_epochs, bounds_text)
except MixplanError as error:
    show_error(error)
    st.stop()

settings = plan_settings(objective, budget, constraints, model_params=params, repetition_form=form)
key = job_key("plan", project, settings, data_hash)
live = live_job(key, url=url)
newest = latest_job(key, url=url)
stored, stale = last_result(project, "plan", key, url=url)
if live is None and (stored is None or stale):
    if newest is not None and newest.state in ("failed", "cancelled"):
        show_failure(newest, what="Planning")
        if retry_wanted(newest, key="plan"):
            runner().submit(project, "plan", settings, plan_work(project, settings, loader(url, data_hash), url=url),
                            data_hash=data_hash, url=url)
            st.rerun()
    else:
        runner().submit(project, "plan", settings, plan_work(project, settings, loader(url, data_hash), url=url),
                                    data_hash=data_hash, url=url)
        live = live_job(key, url=url)
if live is not None:
    job_status(live.id, url, key="plan_job")
if stored is None:
    st.info("No plan yet for this project: the first one is being computed (above).", icon=":material/hourglass:")
    st.stop()
if stale:
    st.warning("Shown: the last plan, made for other settings or older data "
               f"(budget {tokens(stored.settings.get('budget_tokens'))}, objective {stored.settings.get('objective')}). "
               "The plan for the settings above replaces it when its job ends.", icon=":material/history:")

plan = plan_from_result(stored.result)
rec = plan.recommended
lo, hi = rec.objective_interval
best_baseline = min(plan.baselines, key=lambda o: o.objective)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Predicted objective", number(rec.objective, 4), help=f"90% interval from {plan.interval_source}: [{lo:.4f}, {hi:.4f}]")
m2.metric("90% interval", f"[{number(lo, 4)}, {number(hi, 4)}]")
m3.metric(f"vs best baseline ({best_baseline.name})", number(best_baseline.objective, 4),
          delta=difference(rec.objective - best_baseline.objective), delta_color="inverse")
m4.metric("Distance to nearest run", "-" if rec.distance_to_nearest_run is None else number(rec.distance_to_nearest_run),
          help=f"Total-variation distance to run {rec.nearest_run}. Trust region: {plan.trust['rule']}")
change = cached_law_change(project, url, data_hash, objective)
if change:
    st.info(change, icon=":material/swap_horiz:")
if plan.notes:  # one box, a line a note: six boxes pushed the mixture chart below the first screen
    st.info(notes_markdown(plan.notes), icon=":material/info:")
spread_text = ("unknown (no bootstrap refits)" if plan.optimum_spread_tv is None
               else f"{plan.optimum_spread_tv:.3f} (mean TV across bootstrap refits)")
st.caption(f"Budget {tokens(plan.budget_tokens)} tokens · law: {plan.law} (the CV winner unless chosen on the Fit page) · "
           f"intervals from {plan.interval_source} · repetition: {plan.repetition['note']} · "
           f"spread of the optimum: {spread_text} · plan id {plan.plan_id}")

st.subheader("Recommended mixture against the baselines")
st.altair_chart(mixture_bars(plan), width="stretch")
st.caption("Bars: share of the budget per domain. Black whiskers on the plan: the spread of the optimum across "
           "bootstrap refits of the laws.")
st.subheader("Predicted objective per option")
st.altair_chart(objective_chart(plan), width="stretch")
options = objective_frame(plan)
st.dataframe(options, hide_index=True, key="plan_options_table", width="stretch",
             column_config={c: st.column_config.NumberColumn(c, format="%.4f") for c in ("objective", "lo", "hi")}
             | {"distance to runs": st.column_config.NumberColumn("distance to runs", format="%.3f")})

st.subheader("Epochs per domain")
st.altair_chart(epochs_chart(plan, constraints.max_epochs), width="stretch")

st.subheader("Budget sweep")
points = st.slider("Budgets in the grid", 4, 16, 8, key="plan_sweep_points",
                   help=f"From the proxy scale to the most the data can feed: {tokens(defaults.sweep_low)} to "
                        f"{tokens(defaults.sweep_high)} tokens.")
budgets = budget_grid(defaults.sweep_low, defaults.sweep_high, points)
s_settings = sweep_settings(objective, budgets, constraints, model_params=params, repetition_form=form)
s_key = job_key("budget-sweep", project, s_settings, data_hash)
s_live = live_job(s_key, url=url)
s_stored, s_stale = last_result(project, "budget-sweep", s_key, url=url)
s_newest = latest_job(s_key, url=url)
if s_live is None and (s_stored is None or s_stale) and not stale:
    if s_newest is not None and s_newest.state in ("failed", "cancelled"):
        show_failure(s_newest, what="The budget sweep")
    else:
        runner().submit(project, "budget-sweep", s_settings, sweep_work(project, s_settings, url=url),
                        data_hash=data_hash, url=url)
        s_live = live_job(s_key, url=url)
if s_live is not None:
    job_status(s_live.id, url, key="sweep_job")
if s_stored is not None:
    sweep = sweep_from_result(s_stored.result)
    if s_stale:
        st.caption("Shown: the last sweep, for other settings or older data.")
    st.altair_chart(sweep_chart(sweep), width="stretch")
    st.caption(f"Stacked shares of the planned mixture per budget. Triangles: the budget at which a domain reaches "
               f"{sweep.cap_epochs:g} epochs (its cap).")
    st.altair_chart(sweep_objective_chart(sweep), width="stretch")
    if sweep.infeasible:
        st.caption("No plan at " + ", ".join(f"{b} tokens ({plain(why)})" for b, why in sweep.infeasible.items()))

st.subheader("What if")
inputs = loaded_laws().get(laws_key(url, project, data_hash, objective, params, form))
if stale:
    st.caption("The what-if answers once the plan for these settings is ready.")
elif inputs is None:
    load_settings = {"objective": objective, "model_params": params, "repetition_form": form}
    load = loader(url, data_hash)

    def load_laws(progress) -> dict:
        load(project, objective, params, form)  # kept in this server's memory for the sliders
        return {}

    job_id, _ = runner().submit(project, "load-laws", load_settings, load_laws, data_hash=data_hash, url=url)
    st.caption("Loading the fitted laws for the what-if (a job; this server keeps them in memory).")
    job_status(job_id, url, key="load_laws_job")
else:
    @st.fragment
    def what_if_section() -> None:
        domains = list(rec.mixture)
        shown = domains if len(domains) <= 12 else sorted(domains, key=lambda d: -rec.mixture[d])[:12]
        st.caption("Move a domain's share; the others keep their proportions among themselves. "
                   + ("" if len(shown) == len(domains) else f"The {len(shown)} largest of {len(domains)} domains."))
        edited = dict(rec.mixture)
        cols = st.columns(min(4, len(shown)))
        for i, domain in enumerate(shown):
            value = cols[i % len(cols)].slider(domain, 0.0, 1.0, float(round(rec.mixture[domain], 3)), 0.001,
                                               format="%.3f", key=f"whatif_{project}_{domain}")
            edited[domain] = value
        changed = {d for d in shown if abs(edited[d] - round(rec.mixture[d], 3)) > 1e-9}
        rest = [d for d in domains if d not in changed]
        room = max(0.0, 1.0 - sum(edited[d] for d in changed))
        rest_total = sum(rec.mixture[d] for d in rest)
        mixture = {d: (edited[d] if d in changed else (rec.mixture[d] / rest_total * room if rest_total > 0 else 0.0))
                   for d in domains}
        try:
            option = what_if(inputs.model, inputs.context, budget, mixture)
        except MixplanError as error:
            show_error(error)
            return
        w_lo, w_hi = option.objective_interval
        delta = option.objective - rec.objective
        st.metric("Predicted objective of the edited mixture", number(option.objective, 4),
                  delta=difference(delta, " vs plan"), delta_color="inverse",
                  help=f"90% interval [{w_lo:.4f}, {w_hi:.4f}]")
        st.caption(f"90% interval [{number(w_lo, 4)}, {number(w_hi, 4)}] · distance to nearest run "
                   f"{number(option.distance_to_nearest_run)} · edited mixture: "
                   + ", ".join(f"{d} {share(v)}" for d, v in sorted(mixture.items(), key=lambda kv: -kv[1])[:8]))

    what_if_section()

st.subheader("Next runs to pay for")
link("pages/next_runs.py", label="Suggest proxy runs that would narrow this interval", icon=":material/science:")

st.subheader("Export")
cols = st.columns(len(FORMATS))
for col, fmt in zip(cols, FORMATS):
    col.download_button(fmt, export(plan, fmt), file_name=EXPORT_FILES[fmt], key=f"plan_download_{fmt}",
                        on_click="ignore")
