"""Plan: the recommended mixture for a budget, against the baselines, with the budget sweep and exports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from app.ui.cache import database_url
from app.ui.errors import show_error
from app.ui.plan_charts import (epochs_chart, mixture_bars, objective_chart, objective_frame, sweep_chart,
                                sweep_objective_chart)
from app.ui.state import require_project
from engine.errors import MixplanError
from engine.counts import format_count, parse_count
from engine.plan.constraints import Constraints
from engine.plan.exports import FORMATS, export
from engine.plan.plan import Plan, what_if
from engine.plan.suggest import suggest_runs
from engine.plan.sweep import BudgetSweep, budget_grid, sweep_budgets
from engine.services.plans import PlanningInputs, plan_from_inputs, planning_inputs
from engine.services.projects import project_data_hash

EXPORT_FILES = {"json": "plan.json", "yaml": "plan.yaml", "megatron": "megatron_data_path.txt",
                "hf": "interleave_datasets.py", "mosaic": "mosaic_streams.py", "csv": "plan_options.csv"}


@st.cache_data(ttl=30, show_spinner=False)
def _data_hash(project: str, url: str) -> str:
    return project_data_hash(project, url=url)


@st.cache_resource(max_entries=4, show_spinner="Loading the fitted laws…")
def _inputs(project: str, url: str, data_hash: str, objective: str, params: float | None,
            form: str) -> PlanningInputs:
    return planning_inputs(project, objective=objective, model_params=params, repetition_form=form, url=url)


@st.cache_data(max_entries=32, show_spinner="Planning…")
def _plan(project: str, url: str, data_hash: str, objective: str, params: float | None, form: str,
          budget: float, constraints_json: str) -> dict:
    inputs = _inputs(project, url, data_hash, objective, params, form)
    plan = plan_from_inputs(inputs, budget, Constraints.from_dict(json.loads(constraints_json)), url=url)
    return plan.to_dict()


@st.cache_data(max_entries=16, show_spinner="Sweeping budgets…")
def _sweep(project: str, url: str, data_hash: str, objective: str, params: float | None, form: str,
           constraints_json: str, points: int) -> dict:
    inputs = _inputs(project, url, data_hash, objective, params, form)
    sweep = sweep_budgets(inputs.model, inputs.context, budget_grid(1e8, 1e13, points),
                          Constraints.from_dict(json.loads(constraints_json)), objective=objective)
    return sweep.to_dict()


def constraints_table(inputs: PlanningInputs) -> pd.DataFrame:
    ctx = inputs.context
    return pd.DataFrame({
        "domain": inputs.model.domains,
        "unique tokens": [format_count(u) if np.isfinite(u) else "unknown" for u in ctx.unique_tokens],
        "tags": [", ".join(f"{k}={v}" for k, v in t.items()) for t in ctx.domain_tags],
        "min": [None] * len(ctx.unique_tokens),
        "max": [None] * len(ctx.unique_tokens),
        "fixed": [None] * len(ctx.unique_tokens),
        "exclude": [False] * len(ctx.unique_tokens),
    })


def constraints_from(table: pd.DataFrame, exclude_tags: str, max_epochs: float) -> Constraints:
    def shares(column: str) -> dict[str, float]:
        return {row.domain: float(row[column]) for _, row in table.iterrows()
                if row[column] is not None and not pd.isna(row[column])}

    return Constraints(lower=shares("min"), upper=shares("max"), fixed=shares("fixed"),
                       exclude=tuple(table.loc[table["exclude"].astype(bool), "domain"]),
                       exclude_tags=tuple(t.strip() for t in exclude_tags.split(",") if t.strip()),
                       max_epochs=max_epochs or None)


project = require_project()
url = database_url()
st.title("Plan")
st.caption("The mixture to train on for your token budget, how sure the laws are, and what it beats.")

left, middle, right = st.columns(3)
budget_text = left.text_input("Token budget", value="25B", help="e.g. 300B, 2.5T, 3e11", key="plan_budget")
params_text = middle.text_input("Model size (optional)", value="", help="e.g. 1B", key="plan_params")
max_epochs = right.number_input("Epoch cap per domain (0 = none)", min_value=0.0, value=4.0, step=1.0,
                                key="plan_max_epochs")
try:
    budget = parse_count(budget_text, what="a budget", flag="Token budget")
    params = parse_count(params_text, what="a model size", flag="Model size") if params_text.strip() else None
    data_hash = _data_hash(project, url)
    base_inputs = _inputs(project, url, data_hash, "mean", None, "muennighoff")
except MixplanError as error:
    show_error(error)
    st.stop()

c1, c2 = st.columns(2)
objective = c1.selectbox("Objective", ["mean", *base_inputs.model.targets], key="plan_objective",
                         help="'mean' of all evaluation targets, or one target.")
form = c2.radio("Repetition model", ["muennighoff", "goyal"], horizontal=True, key="plan_form",
                help="Muennighoff et al. 2023 effective tokens, or Goyal et al. 2024's halving utility.")

with st.expander("Constraints per domain", expanded=False):
    table = st.data_editor(constraints_table(base_inputs), key="plan_constraints", hide_index=True,
                           disabled=["domain", "unique tokens", "tags"],
                           column_config={c: st.column_config.NumberColumn(c, min_value=0.0, max_value=1.0,
                                                                           step=0.01, format="%.3f")
                                          for c in ("min", "max", "fixed")})
    exclude_tags = st.text_input("Exclude domains with tags (comma-separated)", value="",
                                 placeholder="license=noncommercial", key="plan_exclude_tags")

try:
    constraints = constraints_from(table, exclude_tags, max_epochs)
    constraints_json = json.dumps(constraints.to_dict(), sort_keys=True)
    inputs = _inputs(project, url, data_hash, objective, params, form)
    plan = Plan.from_dict(_plan(project, url, data_hash, objective, params, form, budget, constraints_json))
except MixplanError as error:
    show_error(error)
    st.stop()

rec = plan.recommended
lo, hi = rec.objective_interval
best_baseline = min(plan.baselines, key=lambda o: o.objective)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Predicted objective", f"{rec.objective:.4f}", help=f"90% interval from bootstrap refits: [{lo:.4f}, {hi:.4f}]")
m2.metric("90% interval", f"[{lo:.3f}, {hi:.3f}]")
m3.metric(f"vs best baseline ({best_baseline.name})", f"{best_baseline.objective:.4f}",
          delta=f"{rec.objective - best_baseline.objective:+.4f}", delta_color="inverse")
m4.metric("Distance to nearest run", "-" if rec.distance_to_nearest_run is None else f"{rec.distance_to_nearest_run:.3f}",
          help=f"Total-variation distance to run {rec.nearest_run}. Trust region: {plan.trust['rule']}")
for note in plan.notes:
    st.info(note, icon=":material/info:")
st.caption(f"Law: {plan.law} · repetition: {plan.repetition['note']} · spread of the optimum across bootstrap "
           f"refits: {plan.optimum_spread_tv:.3f} (mean TV) · plan id {plan.plan_id}")

st.subheader("Recommended mixture against the baselines")
st.altair_chart(mixture_bars(plan), use_container_width=True)
st.subheader("Predicted objective per option")
st.altair_chart(objective_chart(plan), use_container_width=True)
st.dataframe(objective_frame(plan), hide_index=True, key="plan_options_table")

st.subheader("Epochs per domain")
st.altair_chart(epochs_chart(plan, constraints.max_epochs), use_container_width=True)

st.subheader("Budget sweep")
points = st.slider("Budgets in the grid (1e8 to 1e13 tokens)", 4, 16, 8, key="plan_sweep_points")
sweep_doc = _sweep(project, url, data_hash, objective, params, form, constraints_json, points)
sweep = BudgetSweep(**sweep_doc)
st.altair_chart(sweep_chart(sweep), use_container_width=True)
st.caption(f"Triangles: the budget at which a domain reaches {sweep.cap_epochs:g} epochs.")
st.altair_chart(sweep_objective_chart(sweep), use_container_width=True)
for budget_text_, why in sweep.infeasible.items():
    st.warning(f"No plan at {budget_text_} tokens: {why}")

st.subheader("What if")
edited = st.data_editor(pd.DataFrame({"domain": list(rec.mixture), "share": list(rec.mixture.values())}),
                        key="plan_what_if", hide_index=True, disabled=["domain"],
                        column_config={"share": st.column_config.NumberColumn(min_value=0.0, max_value=1.0,
                                                                              step=0.01, format="%.3f")})
try:
    option = what_if(inputs.model, inputs.context, budget, dict(zip(edited["domain"], edited["share"].fillna(0.0))))
    w_lo, w_hi = option.objective_interval
    st.metric("Predicted objective of the edited mixture", f"{option.objective:.4f}",
              delta=f"{option.objective - rec.objective:+.4f} vs plan", delta_color="inverse",
              help=f"90% interval [{w_lo:.4f}, {w_hi:.4f}]; shares must sum to 1 (within 1%, as in an import)")
    st.caption(f"90% interval [{w_lo:.4f}, {w_hi:.4f}] · distance to nearest run "
               f"{option.distance_to_nearest_run:.3f}")
except MixplanError as error:
    show_error(error)

st.subheader("Next runs to pay for")
n_suggest = st.number_input("How many proxy runs", min_value=1, max_value=64, value=8, key="plan_suggest_n")
suggestion = suggest_runs(inputs.model, plan, int(n_suggest))
st.caption("Proxy mixtures where the bootstrap refits disagree most near the plan, kept apart from each other.")
st.dataframe(pd.DataFrame(suggestion.mixtures, columns=suggestion.domains).round(4).assign(
    spread=suggestion.spread.round(5)), key="plan_suggest_table")
st.download_button("Download suggested runs (CSV)", suggestion.to_csv(), file_name="suggested_runs.csv",
                   mime="text/csv", key="plan_download_suggest")

st.subheader("Export")
cols = st.columns(len(FORMATS))
for col, fmt in zip(cols, FORMATS):
    col.download_button(fmt, export(plan, fmt), file_name=EXPORT_FILES[fmt], key=f"plan_download_{fmt}")
