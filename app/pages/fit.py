"""Fit: compare mixing laws on held-out runs, see what each predicts, choose the project's law.

Fitting is a job the user starts (never on first open): the page shows the stored
fits of the current data at once, or the newest fit report marked stale.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from app.ui.cache import cached_law_change, current_dataset, database_url
from app.ui.errors import stop_on_error
from app.ui.fit_charts import domain_effect_chart, predicted_vs_actual_chart
from app.ui.jobs import job_status, runner, show_failure
from app.ui.state import link, require_project
from app.ui.style import number
from app.ui.text import plain
from engine.laws.registry import DEFAULT_LAWS
from engine.services import fits
from engine.services.jobs import job_key, last_result, latest_job, live_job
from engine.services.runs import list_targets
from engine.services.tasks import fit_report_from_dict, fit_settings, fit_work, stored_fit_report
from engine.store.dataset import Dataset


# ``_dataset``: the project's runs at ``data_hash`` (current_dataset), passed so that nothing reads them again;
# left out of the cache keys (a leading underscore), which the hash already decides.
@st.cache_data(show_spinner=False, max_entries=32)
def _stored_report(project: str, url: str, data_hash: str, objective: str, laws: tuple[str, ...],
                   overrides_version: int, _dataset: Dataset) -> fits.FitReport | None:
    return stored_fit_report(project, objective, list(laws), url=url, dataset=_dataset)


@st.cache_data(show_spinner=False, max_entries=32)
def _held_out(project: str, url: str, data_hash: str, objective: str, _dataset: Dataset) -> fits.HeldOut:
    return fits.held_out_predictions(project, objective=objective, url=url, dataset=_dataset)


@st.cache_data(show_spinner=False, max_entries=64)
def _effect(project: str, url: str, data_hash: str, objective: str, law: str, domain: str,
            _dataset: Dataset) -> fits.DomainEffect:
    _, reference = fits.mean_mixture(project, url=url, dataset=_dataset)
    model = fits.load_objective_model(project, objective=objective, law=law, url=url, dataset=_dataset)
    return fits.domain_effect(model, reference, domain)


def comparison_frame(report: fits.FitReport) -> pd.DataFrame:
    def num(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

    return pd.DataFrame([{
        "law": r.law, "default": "yes" if r.law == report.default_law else "", "smooth": "yes" if r.smooth else "no",
        "Spearman": num(r.spearman), "Pearson": num(r.pearson), "MAE": num(r.mae), "RMSE": num(r.rmse),
        "top-1 rank": r.top1_rank, "top-1 gap": num(r.top1_gap), "90% coverage": num(r.coverage),
        "fit seconds": round(r.seconds, 1),
        "note": r.error or ("; ".join(filter(None, ["reused" if r.reused else "fitted now",
                                                    fits.REFITS_SKIPPED_NOTE if r.refits_skipped else ""])))}
        for r in report.rows])


def default_weights(names: list[str]) -> str:
    """Every target, equal weights summing to one (the 'mean' written out, ready to edit)."""
    return ",".join(f"{name}={1 / len(names):.4g}" for name in names)


st.title("Fit")
project = require_project()
url = database_url()
with stop_on_error():
    targets = list_targets(project, url=url)
    # the runs once (the views below take them; the hash keys their caches), again after a few seconds
    dataset = current_dataset(project, url)
    data_hash = dataset.data_hash
if not targets:
    st.info("This project has no evaluation targets yet: upload runs first.", icon=":material/upload:")
    link("pages/upload.py", label="Upload runs", icon=":material/upload:")
    st.stop()

target_names = [t.name for t in targets]
kind = st.radio("Objective", ["mean of all targets", "one target", "weighted"], horizontal=True,
                index=1 if len(target_names) == 1 else 0)
if kind == "one target":
    objective = st.selectbox("Target", target_names)
elif kind == "weighted":
    objective = st.text_input("Weights (target=weight, comma separated)", value=default_weights(target_names),
                              help="Starts as the mean: every target with the same weight. Edit the weights you care about.")
else:
    objective = "mean"
laws = st.multiselect("Laws", DEFAULT_LAWS, default=DEFAULT_LAWS)
if not laws:
    st.info("Pick at least one law.")
    st.stop()

settings = fit_settings(objective, laws)
key = job_key("fit", project, settings, data_hash)
with stop_on_error():
    report = _stored_report(project, url, data_hash, objective, tuple(sorted(laws)),
                            st.session_state.get("_fit_overrides", 0), dataset)
live = live_job(key, url=url)
newest = latest_job(key, url=url)
stale = False
if report is None:
    stored, stale = last_result(project, "fit", key, url=url)
    report = fit_report_from_dict(stored.result) if stored is not None else None
    stale = stale or report is None or report.data_hash != data_hash

cols = st.columns([1, 3])
ask = cols[0].button("Fit laws" if report is None else "Refit on the current data", type="primary",
                     disabled=live is not None or (report is not None and not stale), key="fit_start")
cols[1].caption("5-fold cross-validation over runs and 100 bootstrap refits per law, as a background job: "
                "switch pages freely, the result is stored.")
if ask:
    runner().submit(project, "fit", settings, fit_work(project, settings, url=url), data_hash=data_hash, url=url)
    live = live_job(key, url=url)
if live is not None:
    job_status(live.id, url, key="fit_job")
elif newest is not None:
    show_failure(newest, what="Fitting")
if report is None:
    st.info("No laws fitted for this objective yet. Press **Fit laws** to start (a minute or so on 512 runs).",
            icon=":material/insights:")
    st.stop()
if stale:
    st.warning("Shown: the newest fit, made on other settings or older data. Refit to compare the laws on the "
               "current runs.", icon=":material/history:")

st.subheader("Comparison on held-out runs")
st.caption(f"{report.n_runs} runs, objective **{plain(report.objective)}** (lower is better), 5-fold CV over runs. "
           f"Default law: best Spearman; laws within {fits.SPEARMAN_TIE:g} count as tied and the lower MAE wins, "
           f"but a tied smooth law with bootstrap refits within {fits.MAE_TIE - 1:.0%} of that MAE is preferred "
           "(it has gradients for the planner and intervals from real refits). "
           "90% coverage: share of held-out runs inside their 90% interval (calibrated on the other folds).")
st.dataframe(comparison_frame(report), hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                            for c in ("Spearman", "Pearson", "MAE", "RMSE", "top-1 gap", "90% coverage")})
with stop_on_error():
    change = cached_law_change(project, url, data_hash, report.objective, dataset)
if change:
    st.info(change, icon=":material/swap_horiz:")

ok_laws = [r.law for r in report.rows if r.error is None]
if not ok_laws or stale:
    st.stop()

st.subheader("Project law for this objective")
current = report.default_law
choice = st.selectbox("Law the planner uses", ok_laws, index=ok_laws.index(current) if current in ok_laws else 0)
cols = st.columns(2)
if cols[0].button("Use this law", disabled=choice == current and report.overridden):
    with stop_on_error():
        fits.set_default_law(project, report.objective, choice, url=url)
    st.session_state["_fit_overrides"] = st.session_state.get("_fit_overrides", 0) + 1
    st.rerun()
if cols[1].button("Back to the best CV law", disabled=not report.overridden):
    with stop_on_error():
        fits.set_default_law(project, report.objective, None, url=url)
    st.session_state["_fit_overrides"] = st.session_state.get("_fit_overrides", 0) + 1
    st.rerun()

st.subheader("Predicted vs actual (held-out folds)")
held = _held_out(project, url, data_hash, report.objective, dataset)
frame = pd.DataFrame({"law": held.law, "run": held.run, "fold": held.fold, "actual": held.actual, "predicted": held.predicted})
frame = frame[frame["law"].isin(ok_laws)]
if frame.empty:
    st.info("No held-out predictions stored yet.")
else:
    st.altair_chart(predicted_vs_actual_chart(frame, objective=report.objective), width="stretch")

st.subheader("Per-domain effect")
domains = list(dataset.domains)
domain = st.selectbox("Domain", domains)
shown = st.multiselect("Laws to show", ok_laws, default=[current] if current in ok_laws else ok_laws[:1])
effects = []
for law in shown:
    with stop_on_error():
        effect = _effect(project, url, data_hash, report.objective, law, domain, dataset)
    effects.append(pd.DataFrame({"law": law, "share": effect.shares, "predicted": effect.predicted,
                                 "lower": effect.lower, "upper": effect.upper}))
if effects:
    st.altair_chart(domain_effect_chart(pd.concat(effects), domain=domain, objective=report.objective),
                    width="stretch")
    st.caption("Bands: 90% interval of the bootstrap refits (trees: of the held-out CV errors), widened or "
               "narrowed so that it held 90% of held-out runs. "
               "Other domains keep their proportions from the mean mixture of the runs. Best Spearman "
               f"{number(max(r.spearman for r in report.rows if r.error is None))}.")
