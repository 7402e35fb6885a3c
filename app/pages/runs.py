"""Runs: the project's runs with mixtures and provenance, a mixture chart, learning curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from app.ui.cache import cached_curves, cached_runs, cached_targets, forget_cached_data
from app.ui.charts import OTHER, curve_runs, curves_chart, mixture_chart, mixture_frame, top_domains
from app.ui.errors import show_error
from app.ui.state import require_project
from app.ui.text import plain
from engine.errors import MixplanError
from engine.services.ingest import set_domain_metadata
from engine.services.runs import list_domains

MAX_BARS = 200  # past this the chart shows an even sample, best to worst: 512 bars took the browser a 0.35 s task
MAX_CURVES = 100
PROVENANCE_FIELDS = ["tokens", "model_params", "seed", "seq_len", "tokenizer", "framework", "method", "status"]


def final_column(target: str) -> str:
    """Column of a target's final value; named apart from the share columns (RegMix has a domain and a target 'arxiv')."""
    return f"{target} (final)"


def runs_table(runs, domains: list[str], target: str, shown: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per run: final value of ``target``, shares of the ``shown`` domains (all by default, the rest
    summed as 'other'), provenance; columns nobody recorded are dropped."""
    table = pd.DataFrame({"run": [r.name for r in runs],
                          final_column(target): [r.final.get(target, np.nan) for r in runs]})
    shown = domains if shown is None else shown
    for domain in shown:
        table[domain] = [r.mixture.get(domain, 0.0) for r in runs]
    if len(shown) < len(domains):
        table[OTHER] = [max(0.0, 1.0 - sum(r.mixture.get(d, 0.0) for d in shown)) for r in runs]
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


def search_text(table: pd.DataFrame) -> pd.Series:
    """Each row's cells as one lower-case string, joined column by column (a row-wise ``agg(" ".join)``
    took 0.25 s on 512 runs, a quarter of a search; this takes 0.04 s)."""
    joined = None
    for column in table.columns:
        cells = table[column].astype(str).to_numpy(dtype=object)
        joined = cells if joined is None else joined + " " + cells
    return pd.Series(joined if joined is not None else [""] * len(table), index=table.index, dtype=object).str.lower()


def _cell(value):
    """Nested provenance values (lists, dicts) shown as compact JSON so the column has one type."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def setups_table(runs) -> pd.DataFrame:
    """How many runs share each setup (model size, sequence length, tokenizer, framework).

    Tokens are left out on purpose: sweeps vary the budget so that the laws can see repetition.
    """
    keys = ["model_params", "seq_len", "tokenizer", "framework"]
    frame = pd.DataFrame([{k: getattr(r, k) for k in keys} for r in runs]).astype(object)
    frame = frame.where(frame.notna(), "—")
    return frame.value_counts().rename("runs").reset_index()


def spread_pick(names: list[str], count: int) -> list[str]:
    """``count`` names evenly spaced through ``names`` (best, worst and those between)."""
    if len(names) <= count:
        return names
    picks = np.unique(np.linspace(0, len(names) - 1, count).round().astype(int))
    return [names[i] for i in picks]


def format_tags(tags: dict) -> str:
    """{"license": "cc-by", "noncommercial": True} -> 'license=cc-by; noncommercial' (what parse_tags reads back)."""
    return "; ".join(key if value is True else f"{key}={value}" for key, value in tags.items())


def save_domain_edits(project: str, original: pd.DataFrame, edited: pd.DataFrame) -> int:
    """Write the rows the user changed; an invalid cell is shown as an error and nothing after it is written."""
    changed = 0
    for before, after in zip(original.to_dict("records"), edited.to_dict("records")):
        new = {key: (after[key] or "").strip() for key in ("unique_tokens", "tags", "data_path")}
        edits = {key: value for key, value in new.items() if value != before[key]}
        if not edits:
            continue
        try:
            set_domain_metadata(
                project, before["domain"],
                unique_tokens=edits.get("unique_tokens") or None,
                tags=[edits["tags"]] if edits.get("tags") else None,
                data_path=edits.get("data_path"),
            )
        except MixplanError as error:
            show_error(error)
            break
        changed += 1
    return changed


def count_slider(label: str, maximum: int, default: int, key: str) -> int:
    """A slider from 1 to ``maximum``; with a single choice there is nothing to slide."""
    if maximum <= 1:
        return maximum
    return st.slider(label, 1, maximum, min(default, maximum), key=key)


@st.fragment
def run_table(table: pd.DataFrame, number_columns: list[str]) -> None:
    """The search box and the table it filters, one fragment: a search reruns this part only, not the
    charts below."""
    search = st.text_input("Search runs", placeholder="part of a run name, source file or setting", key="runs_search")
    shown_table = table
    if search.strip():
        needle = search.strip().lower()
        shown_table = table[search_text(table).str.contains(needle, regex=False)]
        st.caption(f"{len(shown_table)} of {len(table)} runs match '{plain(search.strip())}'.")
    st.dataframe(
        shown_table,
        hide_index=True,
        width="stretch",
        column_config={d: st.column_config.NumberColumn(d, format="%.3f") for d in number_columns},
    )


project = require_project()
st.title("Runs")
runs = cached_runs(project)
if not runs:
    st.info(f"Project **{plain(project)}** has no runs yet. Add logs on the **Upload** page.")
    st.stop()

domains = list(dict.fromkeys(d for r in runs for d in r.mixture))
targets = sorted({t for r in runs for t in r.final})
directions = {t.name: t.direction for t in cached_targets(project)}
curves = cached_curves(project)
curve_frame = pd.DataFrame({"run": curves.run, "target": curves.target,
                            "tokens_seen": curves.tokens_seen, "value": curves.value})
with_curves = curve_runs(curve_frame)  # target -> runs with a learning curve
runs_with_curves = set().union(*with_curves.values())

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
    st.dataframe(setups, hide_index=True, width="stretch")

top_n = count_slider("Domains shown (the rest is summed as 'other')", len(domains), 8, "runs_top_n")
shown_domains = top_domains([r.mixture for r in runs], top_n)
table, unrecorded = runs_table(runs, domains, target or "final", shown_domains)
if target:
    lower_is_better = directions.get(target, "lower") == "lower"
    table = table.sort_values(final_column(target), ascending=lower_is_better, na_position="last", kind="stable")
st.subheader(f"{len(runs)} runs")
run_table(table, [*shown_domains, OTHER])
if unrecorded:
    st.caption("Not recorded for any run: " + ", ".join(unrecorded) + ".")

st.subheader("Mixtures")
ordered = list(table["run"])
by_name = {r.name: r for r in runs}
bars = spread_pick(ordered, MAX_BARS)
if len(bars) < len(ordered):
    st.caption(f"{len(bars)} of {len(ordered)} runs drawn, evenly spread from best to worst.")
st.altair_chart(
    mixture_chart(mixture_frame(bars, [by_name[n].mixture for n in bars], top_n),
                  sort_label=f"best {target} first" if target else "as listed"),
    width="stretch",
)

st.subheader("Learning curves")
if not target or not with_curves.get(target):
    st.caption(f"No run has more than one checkpoint of {plain(target) if target else 'any target'}, so there are no "
               "learning curves to draw.")
else:
    ranked = [n for n in ordered if n in with_curves[target]]
    shown = count_slider("Runs drawn (evenly spread from best to worst)", min(len(ranked), MAX_CURVES), 12,
                         "runs_curves_count")
    picked = spread_pick(ranked, shown)
    lines = curve_frame[(curve_frame["target"] == target) & curve_frame["run"].isin(picked)].dropna()
    st.altair_chart(curves_chart(lines, target=target), width="stretch")

st.subheader("Domains")
domain_rows = list_domains(project)
original = pd.DataFrame({
    "domain": [d.name for d in domain_rows],
    "unique_tokens": [str(d.unique_tokens) if d.unique_tokens is not None else "" for d in domain_rows],
    "tags": [format_tags(d.tags) for d in domain_rows],
    "data_path": [d.data_path or "" for d in domain_rows],
})
st.caption("Unique tokens decide how many epochs a budget reads of each domain; tags (e.g. `license=cc-by`) "
           "let a plan exclude domains. Edit cells, then save. Tags are added or updated, never removed here.")
edited = st.data_editor(
    original, hide_index=True, key="domains_editor", disabled=["domain"],
    column_config={
        "unique_tokens": st.column_config.TextColumn("unique tokens", help="A count such as 80000000 or 1.2B."),
        "tags": st.column_config.TextColumn("tags", help="key=value pairs separated by ';'."),
        "data_path": st.column_config.TextColumn("data path"),
    },
)
if st.button("Save domain metadata", key="domains_save"):
    changed = save_domain_edits(project, original, edited)
    if changed:
        forget_cached_data()
        st.success(f"Saved metadata of {changed} domain(s).")
    else:
        st.info("Nothing changed.")
