"""Runs: the project's runs with mixtures and provenance, a mixture chart, learning curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from app.ui.cache import cached_curves, cached_runs, cached_targets
from app.ui.charts import curves_chart, mixture_chart, mixture_frame
from app.ui.state import require_project

PROVENANCE_FIELDS = ["tokens", "model_params", "seed", "seq_len", "tokenizer", "framework", "method", "status"]


def final_column(target: str) -> str:
    """Column of a target's final value; named apart from the share columns (RegMix has a domain and a target 'arxiv')."""
    return f"{target} (final)"


def runs_table(runs, domains: list[str], target: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per run: final value of ``target``, shares, provenance; columns nobody recorded are dropped."""
    table = pd.DataFrame({"run": [r.name for r in runs],
                          final_column(target): [r.final.get(target, np.nan) for r in runs]})
    for domain in domains:
        table[domain] = [r.mixture.get(domain, 0.0) for r in runs]
    for field in PROVENANCE_FIELDS:
        table[field] = [getattr(r, field) for r in runs]
    table["measurements"] = [r.n_measurements for r in runs]
    table["source file"] = [r.source_file for r in runs]
    extra_keys = sorted({key for r in runs for key in r.provenance})
    for key in extra_keys:
        column = key if key not in table.columns else f"provenance.{key}"
        table[column] = [_cell(r.provenance.get(key)) for r in runs]
    empty = [c for c in table.columns if c not in ("run", final_column(target)) and table[c].isna().all()]
    return table.drop(columns=empty), empty


def _cell(value):
    """Nested provenance values (lists, dicts) shown as compact JSON so the column has one type."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def setups_table(runs) -> pd.DataFrame:
    """How many runs share each setup (model size, tokens, sequence length, tokenizer, framework)."""
    keys = ["model_params", "tokens", "seq_len", "tokenizer", "framework"]
    frame = pd.DataFrame([{k: getattr(r, k) for k in keys} for r in runs]).astype(object)
    frame = frame.where(frame.notna(), "—")
    return frame.value_counts().rename("runs").reset_index()


def spread_pick(names: list[str], count: int) -> list[str]:
    """``count`` names evenly spaced through ``names`` (best, worst and those between)."""
    if len(names) <= count:
        return names
    picks = np.unique(np.linspace(0, len(names) - 1, count).round().astype(int))
    return [names[i] for i in picks]


def count_slider(label: str, maximum: int, default: int, key: str) -> int:
    """A slider from 1 to ``maximum``; with a single choice there is nothing to slide."""
    if maximum <= 1:
        return maximum
    return st.slider(label, 1, maximum, min(default, maximum), key=key)


project = require_project()
st.title("Runs")
runs = cached_runs(project)
if not runs:
    st.info(f"Project **{project}** has no runs yet. Add logs on the **Upload** page.")
    st.stop()

domains = list(dict.fromkeys(d for r in runs for d in r.mixture))
targets = sorted({t for r in runs for t in r.final})
directions = {t.name: t.direction for t in cached_targets(project)}
curves = cached_curves(project)
curve_frame = pd.DataFrame({"run": curves.run, "target": curves.target,
                            "tokens_seen": curves.tokens_seen, "value": curves.value})
checkpoints = curve_frame.dropna(subset=["tokens_seen"]).groupby(["run", "target"]).size()
runs_with_curves = sorted({run for (run, _), n in checkpoints.items() if n >= 2})

cols = st.columns(4)
cols[0].metric("Runs", len(runs))
cols[1].metric("Domains", len(domains))
cols[2].metric("Evaluation targets", len(targets))
cols[3].metric("Runs with learning curves", len(runs_with_curves))

if not targets:
    st.warning("These runs carry no measurements yet, so there is nothing to rank or plot by target.")
    target = ""
else:
    target = st.selectbox("Evaluation target", targets, key="runs_target",
                          help="Ranks the runs, fills the table's first value column and picks the learning curves.")

setups = setups_table(runs)
if len(setups) > 1:
    st.warning(f"These runs come from {len(setups)} different setups; compare them with care.",
               icon=":material/call_split:")
    st.dataframe(setups, hide_index=True)

table, unrecorded = runs_table(runs, domains, target) if target else runs_table(runs, domains, "final")
if target:
    lower_is_better = directions.get(target, "lower") == "lower"
    table = table.sort_values(final_column(target), ascending=lower_is_better, na_position="last", kind="stable")
st.subheader(f"{len(runs)} runs")
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={d: st.column_config.NumberColumn(d, format="%.3f") for d in domains},
)
if unrecorded:
    st.caption("Not recorded for any run: " + ", ".join(unrecorded) + ".")

st.subheader("Mixtures")
top_n = count_slider("Domains shown (the rest is summed as 'other')", len(domains), 8, "runs_top_n")
ordered = list(table["run"])
by_name = {r.name: r for r in runs}
st.altair_chart(
    mixture_chart(mixture_frame(ordered, [by_name[n].mixture for n in ordered], top_n),
                  sort_label=f"best {target} first" if target else "as listed"),
    width="stretch",
)

st.subheader("Learning curves")
if not target or not runs_with_curves:
    st.caption("No run has more than one checkpoint, so there are no learning curves to draw.")
else:
    ranked = [n for n in ordered if n in set(runs_with_curves)]
    shown = count_slider("Runs drawn (evenly spread from best to worst)", len(ranked), 12, "runs_curves_count")
    picked = spread_pick(ranked, shown)
    lines = curve_frame[(curve_frame["target"] == target) & curve_frame["run"].isin(picked)].dropna()
    st.altair_chart(curves_chart(lines, target=target), width="stretch")
