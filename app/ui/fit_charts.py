"""Altair charts of the Fit page: held-out predicted vs actual, and per-domain effects with bands."""

from __future__ import annotations

import altair as alt
import pandas as pd


def predicted_vs_actual_chart(frame: pd.DataFrame, *, objective: str) -> alt.LayerChart:
    """One point per run and law (held-out predictions), faceted by colour, with the y = x diagonal.

    ``frame`` columns: law, run, fold, actual, predicted.
    """
    low = float(min(frame["actual"].min(), frame["predicted"].min()))
    high = float(max(frame["actual"].max(), frame["predicted"].max()))
    diagonal = alt.Chart(pd.DataFrame({"actual": [low, high], "predicted": [low, high]})).mark_line(
        color="gray", strokeDash=[4, 4]).encode(x="actual:Q", y="predicted:Q")
    scale = alt.Scale(domain=[low, high], zero=False)
    points = alt.Chart(frame).mark_circle(size=28, opacity=0.6).encode(
        x=alt.X("actual:Q", title=f"actual {objective}", scale=scale),
        y=alt.Y("predicted:Q", title=f"held-out prediction of {objective}", scale=scale),
        color=alt.Color("law:N", title="law"),
        tooltip=["law", "run", "fold", alt.Tooltip("actual:Q", format=".4f"), alt.Tooltip("predicted:Q", format=".4f")],
    )
    return (diagonal + points).properties(height=420)


def domain_effect_chart(frame: pd.DataFrame, *, domain: str, objective: str) -> alt.LayerChart:
    """Predicted objective vs one domain's share, a line per law with its 90% bootstrap band.

    ``frame`` columns: law, share, predicted, lower, upper.
    """
    base = alt.Chart(frame).encode(x=alt.X("share:Q", title=f"share of {domain} (others scaled from the mean mixture)"))
    band = base.mark_area(opacity=0.2).encode(y=alt.Y("lower:Q", scale=alt.Scale(zero=False)), y2="upper:Q",
                                              color=alt.Color("law:N", title="law"))
    line = base.mark_line().encode(
        y=alt.Y("predicted:Q", title=f"predicted {objective}", scale=alt.Scale(zero=False)), color="law:N",
        tooltip=["law", alt.Tooltip("share:Q", format=".2f"), alt.Tooltip("predicted:Q", format=".4f"),
                 alt.Tooltip("lower:Q", format=".4f"), alt.Tooltip("upper:Q", format=".4f")])
    return (band + line).properties(height=320)
