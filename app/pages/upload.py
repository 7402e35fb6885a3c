"""Upload: import proxy-run logs (any supported format) into the current project, with the validation report."""

from __future__ import annotations

import streamlit as st

from app.ui.cache import forget_cached_data
from app.ui.errors import show_error
from app.ui.state import require_project
from app.ui.text import plain
from app.ui.style import OVERFLOW, note_count
from engine.errors import MixplanError
from engine.services.ingest import IngestReport, ingest_uploads
from engine.services.next_runs import match_results

NOTES_SHOWN = 5  # a file with hundreds of renormalised rows gets one box, not hundreds
ACCEPTED_SUFFIXES = ["csv", "tsv", "jsonl", "json", "yaml", "yml"]
FORMATS_HELP = """
- **RegMix pair** — a mixture CSV and a loss CSV joined by a run-id column (e.g. `train_mixture_1m.csv` + `train_pile_loss_1m.csv`). Upload both together.
- **Olmix swarm pair** — the ratios CSV and the metrics CSV Olmix writes, joined by `run`. Upload both together.
- **Tidy CSV** — one row per run and checkpoint: `run_id`, `tokens`, optional `model_params`, mixture columns and metric columns.
- **JSONL** — one object per run with a `mixture` mapping and a list of `measurements`.
- **Domain metadata** — a CSV or YAML with unique tokens and tags (e.g. a licence) per domain.

An import is all or nothing: a rejected file changes nothing, and importing the same content twice adds nothing.
"""


def show_report(report: IngestReport) -> None:
    """The validation report of an accepted import: counts, notes, or 'already imported'."""
    if report.already_imported:
        st.info(report.summary(), icon=":material/done_all:")
    else:
        st.success("Imported: " + report.summary(), icon=":material/check_circle:")
    cols = st.columns(5)
    cols[0].metric("Runs added", report.runs_added)
    cols[1].metric("Runs unchanged", report.runs_unchanged)
    cols[2].metric("Measurements added", report.measurements_added)
    cols[3].metric("Domains", report.domains)
    cols[4].metric("Targets", report.targets)
    if report.notes:
        listed = [n for n in report.notes if not OVERFLOW.match(n)]
        total = note_count(report.notes)
        shown = listed[:NOTES_SHOWN]
        more = f"\n\n...and {total - len(shown)} more (listed below)." if total > len(shown) else ""
        st.warning(f"{total} note{'s' if total != 1 else ''} on this import:\n\n" + "\n".join(f"- {plain(n)}" for n in shown)
                   + more, icon=":material/warning:")
        if more:
            with st.expander(f"All {total} notes"):
                st.text("\n".join(report.notes))


project = require_project()
st.title("Upload")
st.caption(f"Logs go into project **{plain(project)}** (choose another on the Projects page).")

with st.form("upload", clear_on_submit=False):
    files = st.file_uploader(
        "Run logs and domain metadata",
        type=ACCEPTED_SUFFIXES,
        accept_multiple_files=True,
        help="Give the two files of a pair together; mixplan recognises the format from the files.",
    )
    submitted = st.form_submit_button("Import", type="primary")

with st.expander("Supported formats"):
    st.markdown(FORMATS_HELP)

if submitted:
    if not files:
        st.warning("Choose one or more files first.")
    else:
        with st.spinner(f"Validating and importing {len(files)} file(s)..."):
            try:
                result = ingest_uploads(project, [(f.name, f.getvalue()) for f in files])
            except MixplanError as error:
                show_error(error, nothing_changed=True)
            else:
                forget_cached_data()
                show_report(result)
                completed = match_results(project)
                if completed:
                    st.success(f"These results complete {len(completed)} suggested run(s): {', '.join(completed)}. "
                               "The plan uses them from now on.", icon=":material/science:")
                    st.page_link("pages/next_runs.py", label="Next runs", icon=":material/science:")
