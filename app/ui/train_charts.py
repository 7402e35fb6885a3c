"""Altair specs and frames for the Train page: job progress and Aioli's proportion trajectories."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from engine.train.jobs import JobView


def jobs_frame(jobs: Sequence[JobView]) -> pd.DataFrame:
    """One row a job, newest first, with the columns the page shows."""
    return pd.DataFrame(
        [
            {"job": j.id, "kind": j.kind, "run": j.run or "—", "state": j.state, "progress": j.progress,
             "heartbeat (UTC)": j.heartbeat_at.strftime("%H:%M:%S") if j.heartbeat_at else "",
             "error": j.error or ""}
            for j in jobs
        ],
        columns=["job", "kind", "run", "state", "progress", "heartbeat (UTC)", "error"],
    )


def trajectory_chart(rows: Sequence[dict]) -> alt.Chart:
    """Stacked area of each domain's share over tokens, one panel per online run."""
    frame = pd.DataFrame(rows, columns=["run", "tokens", "domain", "share"])
    return (
        alt.Chart(frame)
        .mark_area(interpolate="step-after")
        .encode(
            x=alt.X("tokens:Q", title="tokens seen"),
            y=alt.Y("share:Q", stack="normalize", title="share", axis=alt.Axis(format="%")),
            color=alt.Color("domain:N", title="domain"),
            tooltip=["run", "tokens", "domain", alt.Tooltip("share:Q", format=".3f")],
        )
        .properties(height=160)
        .facet(row=alt.Row("run:N", title=None))
    )
