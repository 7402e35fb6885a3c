"""Fit: compare mixing laws on held-out runs, see what each predicts, choose the project's law."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from app.ui.cache import database_url
from app.ui.errors import stop_on_error
from app.ui.fit_charts import domain_effect_chart, predicted_vs_actual_chart
from app.ui.state import require_project
from engine.laws.registry import DEFAULT_LAWS
from engine.services import fits
from engine.services.projects import project_data_hash
from engine.services.runs import list_targets


@st.cache_data(show_spinner=False, max_entries=32)
def _report(project: str, url: str, data_hash: str, objective: str, laws: tuple[str, ...]) -> fits.FitReport:
    """Keyed on the data hash: a revisit on unchanged data is instant (and fit_project reuses stored fits)."""
    return fits.fit_project(project, objective=objective, laws=list(laws), url=url)


@st.cache_data(show_spinner=False, max_entries=32)
def _held_out(project: str, url: str, data_hash: str, objective: str) -> fits.HeldOut:
    return fits.held_out_predictions(project, objective=objective, url=url)


@st.cache_data(show_spinner=False, max_entries=64)
def _effect(project: str, url: str, data_hash: str, objective: str, law: str, domain: str) -> fits.DomainEffect:
    _, reference = fits.mean_mixture(project, url=url)
    model = fits.load_objective_model(project, objective=objective, law=law, url=url)
    return fits.domain_effect(model, reference, domain)


def comparison_frame(report: fits.FitReport) -> pd.DataFrame:
    def num(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

    return pd.DataFrame([{
        "law": r.law, "default": "yes" if r.law == report.default_law else "", "smooth": "yes" if r.smooth else "no",
        "Spearman": num(r.spearman), "Pearson": num(r.pearson), "MAE": num(r.mae), "RMSE": num(r.rmse),
        "top-1 rank": r.top1_rank, "top-1 gap": num(r.top1_gap), "90% coverage": num(r.coverage),
        "fit seconds": round(r.seconds, 1),
        "note": r.error or ("reused" if r.reused else "fitted now")} for r in report.rows])


st.title("Fit")
project = require_project()
url = database_url()
with stop_on_error():
    targets = list_targets(project, url=url)
    data_hash = project_data_hash(project, url=url)
if not targets:
    st.info("This project has no evaluation targets yet. Upload runs on the **Upload** page.")
    st.stop()

target_names = [t.name for t in targets]
kind = st.radio("Objective", ["mean of all targets", "one target", "weighted"], horizontal=True)
if kind == "one target":
    objective = st.selectbox("Target", target_names)
elif kind == "weighted":
    default_weights = ",".join(f"{name}={1 / len(target_names):.3g}" for name in target_names[:3])
    objective = st.text_input("Weights (target=weight, comma separated)", value=default_weights)
else:
    objective = "mean"
laws = st.multiselect("Laws", DEFAULT_LAWS, default=DEFAULT_LAWS)
if not laws:
    st.info("Pick at least one law.")
    st.stop()

with st.spinner("Fitting laws with 5-fold cross-validation and bootstrap refits (reused when the data is unchanged)..."):
    with stop_on_error():
        report = _report(project, url, data_hash, objective, tuple(laws))

st.subheader("Comparison on held-out runs")
st.caption(f"{report.n_runs} runs, objective **{report.objective}** (lower is better), 5-fold CV over runs. "
           "Default law: best Spearman; laws within 0.002 count as tied and the lower MAE wins. "
           "90% coverage: share of held-out runs inside their 90% interval (calibrated on the other folds).")
st.dataframe(comparison_frame(report), hide_index=True, width="stretch")

ok_laws = [r.law for r in report.rows if r.error is None]
if not ok_laws:
    st.warning("No law could be fitted on this project's runs; see the notes above.")
    st.stop()

st.subheader("Project law for this objective")
current = report.default_law
choice = st.selectbox("Law the planner uses", ok_laws, index=ok_laws.index(current) if current in ok_laws else 0)
cols = st.columns(2)
if cols[0].button("Use this law", disabled=choice == current and report.overridden):
    with stop_on_error():
        fits.set_default_law(project, report.objective, choice, url=url)
    _report.clear()
    st.rerun()
if cols[1].button("Back to the best CV law", disabled=not report.overridden):
    with stop_on_error():
        fits.set_default_law(project, report.objective, None, url=url)
    _report.clear()
    st.rerun()

st.subheader("Predicted vs actual (held-out folds)")
held = _held_out(project, url, data_hash, report.objective)
frame = pd.DataFrame({"law": held.law, "run": held.run, "fold": held.fold, "actual": held.actual, "predicted": held.predicted})
frame = frame[frame["law"].isin(ok_laws)]
if frame.empty:
    st.info("No held-out predictions stored yet.")
else:
    st.altair_chart(predicted_vs_actual_chart(frame, objective=report.objective), width="stretch")

st.subheader("Per-domain effect")
domains, _ = fits.mean_mixture(project, url=url)
domain = st.selectbox("Domain", domains)
shown = st.multiselect("Laws to show", ok_laws, default=[current] if current in ok_laws else ok_laws[:1])
effects = []
for law in shown:
    with stop_on_error():
        effect = _effect(project, url, data_hash, report.objective, law, domain)
    effects.append(pd.DataFrame({"law": law, "share": effect.shares, "predicted": effect.predicted,
                                 "lower": effect.lower, "upper": effect.upper}))
if effects:
    st.altair_chart(domain_effect_chart(pd.concat(effects), domain=domain, objective=report.objective),
                    width="stretch")
    st.caption("Bands: 90% interval of the bootstrap refits (trees: of the held-out CV errors), widened or "
               "narrowed so that it held 90% of held-out runs. "
               "Other domains keep their proportions from the mean mixture of the runs.")
