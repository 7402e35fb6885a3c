"""Altair specs for the Runs page: mixtures as stacked bars, learning curves on a log token axis."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from app.ui.style import domain_scale

OTHER = "other"


def top_domains(mixtures: Sequence[dict[str, float]], top_n: int) -> list[str]:
    """The ``top_n`` domains with the largest mean share (ties broken by name)."""
    totals: dict[str, float] = {}
    for mixture in mixtures:
        for domain, share in mixture.items():
            totals[domain] = totals.get(domain, 0.0) + share
    return sorted(totals, key=lambda d: (-totals[d], d))[:top_n]


def mixture_frame(names: Sequence[str], mixtures: Sequence[dict[str, float]], top_n: int) -> pd.DataFrame:
    """Long form (run, position, domain, share): the top domains by mean share, the rest summed as 'other'."""
    kept = top_domains(mixtures, top_n)
    rows = []
    for position, (name, mixture) in enumerate(zip(names, mixtures)):
        rest = 1.0 - sum(mixture.get(d, 0.0) for d in kept)
        for domain in kept:
            rows.append((name, position, domain, mixture.get(domain, 0.0)))
        if rest > 1e-9:
            rows.append((name, position, OTHER, rest))
    return pd.DataFrame(rows, columns=["run", "position", "domain", "share"])


def mixture_chart(frame: pd.DataFrame, *, sort_label: str) -> alt.Chart:
    """Stacked bars of domain shares, one bar per run, runs in ``frame.position`` order.

    Stacked here, not in the browser: each segment spans from the shares below it to those plus its own,
    and the runs' order is given as a list, so Vega draws bars without aggregating, stacking or sorting by
    a field (on the Runs page of 512 runs that was a fifth of the browser's work after the page answered)."""
    domains = [d for d in dict.fromkeys(frame["domain"]) if d != OTHER]
    order = domains + ([OTHER] if (frame["domain"] == OTHER).any() else [])
    rank = frame["domain"].map({d: i for i, d in enumerate(order)})
    stacked = frame.assign(domain_rank=rank).sort_values(["position", "domain_rank"], kind="stable")
    top = stacked.groupby("position")["share"].cumsum()
    stacked = stacked.assign(top=top, bottom=top.groupby(stacked["position"]).shift(fill_value=0.0))
    runs = list(dict.fromkeys(stacked["run"]))
    many = len(runs) > 60
    return (
        alt.Chart(stacked)
        .mark_bar()
        .encode(
            x=alt.X("run:N", sort=runs, title=f"runs ({sort_label})", axis=alt.Axis(labels=not many, ticks=not many)),
            y=alt.Y("bottom:Q", title="share of the run's tokens", scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(format="%")),
            y2="top:Q",
            color=alt.Color("domain:N", sort=order, scale=domain_scale(order), legend=alt.Legend(title="domain")),
            tooltip=["run:N", "domain:N", alt.Tooltip("share:Q", format=".3f")],
        )
        .properties(height=320)
    )


def curve_runs(curves: pd.DataFrame) -> dict[str, set[str]]:
    """Target -> the runs with two or more checkpoints of it (a learning curve to draw).

    ``curves`` columns: run, target, tokens_seen (NaN: a final value of unknown count). Grouped in pandas:
    iterating the (run, target) counts in Python took 0.2 s a page run at 512 runs x 110 targets."""
    counts = curves.dropna(subset=["tokens_seen"]).groupby(["target", "run"]).size()
    many = counts[counts >= 2].reset_index()
    return {str(target): set(group["run"]) for target, group in many.groupby("target")}


def curves_chart(frame: pd.DataFrame, *, target: str) -> alt.Chart:
    """Learning curves: ``value`` of ``target`` against tokens seen (log axis), one line per run."""
    legend = alt.Legend(title="run") if frame["run"].nunique() <= 15 else None
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("tokens_seen:Q", scale=alt.Scale(type="log"), title="tokens seen", axis=alt.Axis(format="~s")),
            y=alt.Y("value:Q", scale=alt.Scale(zero=False), title=target),
            color=alt.Color("run:N", legend=legend, scale=alt.Scale(scheme="tableau20")),
            tooltip=["run:N", alt.Tooltip("tokens_seen:Q", format=".3s"), alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=360)
    )
