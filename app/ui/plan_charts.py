"""Altair specs for the Plan page: mixtures against baselines, objectives with intervals, the budget sweep."""

from __future__ import annotations

import altair as alt
import pandas as pd

from engine.plan.plan import Plan
from engine.plan.sweep import BudgetSweep

from app.ui.style import domain_scale, option_scale


def options_frame(plan: Plan) -> pd.DataFrame:
    """Long form (option, domain, share, lo, hi); the plan's whiskers are the spread across bootstrap refits
    (none when the law has no refits: the spread is unknown, not zero)."""
    rows = []
    known = plan.optimum_spread or {}
    for option in [plan.recommended, *plan.baselines]:
        for domain, share in option.mixture.items():
            spread = known.get(domain, 0.0) if option is plan.recommended else 0.0
            rows.append((option.name, domain, share, max(share - spread, 0.0), min(share + spread, 1.0)))
    return pd.DataFrame(rows, columns=["option", "domain", "share", "lo", "hi"])


def mixture_bars(plan: Plan) -> alt.LayerChart:
    frame = options_frame(plan)
    order = [o.name for o in [plan.recommended, *plan.baselines]]
    base = alt.Chart(frame).encode(
        y=alt.Y("domain:N", title=None, sort=list(plan.recommended.mixture)),
        yOffset=alt.YOffset("option:N", sort=order),
    )
    bars = base.mark_bar().encode(
        x=alt.X("share:Q", title="share of the budget", axis=alt.Axis(format="%")),
        color=alt.Color("option:N", sort=order, scale=option_scale(order), legend=alt.Legend(title="option", orient="top")),
        tooltip=["option:N", "domain:N", alt.Tooltip("share:Q", format=".3f"),
                 alt.Tooltip("lo:Q", format=".3f"), alt.Tooltip("hi:Q", format=".3f")],
    )
    whiskers = base.transform_filter(alt.datum.option == "plan").mark_rule(color="black").encode(x="lo:Q", x2="hi:Q")
    return (bars + whiskers).properties(height=max(260, 34 * len(plan.recommended.mixture)))


def objective_frame(plan: Plan) -> pd.DataFrame:
    return pd.DataFrame([
        {"option": o.name, "objective": o.objective, "lo": o.objective_interval[0], "hi": o.objective_interval[1],
         "distance to runs": o.distance_to_nearest_run}
        for o in [plan.recommended, *plan.baselines]
    ])


def objective_chart(plan: Plan) -> alt.LayerChart:
    frame = objective_frame(plan)
    base = alt.Chart(frame).encode(y=alt.Y("option:N", sort=list(frame["option"]), title=None))
    points = base.mark_point(filled=True, size=90).encode(
        x=alt.X("objective:Q", scale=alt.Scale(zero=False), title="predicted objective (lower is better)"),
        color=alt.Color("option:N", legend=None, scale=option_scale(list(frame["option"]))),
        tooltip=["option:N", alt.Tooltip("objective:Q", format=".4f"), alt.Tooltip("lo:Q", format=".4f"),
                 alt.Tooltip("hi:Q", format=".4f"), alt.Tooltip("distance to runs:Q", format=".3f")],
    )
    return (base.mark_rule().encode(x="lo:Q", x2="hi:Q") + points).properties(height=200)


def epochs_chart(plan: Plan, cap: float | None) -> alt.LayerChart:
    frame = pd.DataFrame([{"domain": d, "epochs": e} for d, e in plan.recommended.epochs.items() if e is not None])
    bars = alt.Chart(frame).mark_bar().encode(
        y=alt.Y("domain:N", title=None, sort="-x"), x=alt.X("epochs:Q", title="epochs at this budget"),
        tooltip=["domain:N", alt.Tooltip("epochs:Q", format=".2f")])
    if cap is None:
        return bars
    rule = alt.Chart(pd.DataFrame({"cap": [cap]})).mark_rule(color="red", strokeDash=[4, 3]).encode(x="cap:Q")
    return bars + rule


def sweep_frames(sweep: BudgetSweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(shares per budget and domain, cap points: budget where each domain reaches the cap, with its share)."""
    rows, caps = [], []
    for g, budget in enumerate(sweep.budgets):
        for j, domain in enumerate(sweep.domains):
            share = sweep.shares[g][j]
            if share is not None:
                rows.append((budget, domain, share))
    shares = pd.DataFrame(rows, columns=["budget", "domain", "share"])
    for j, domain in enumerate(sweep.domains):
        budget = sweep.cap_budget.get(domain)
        if budget is None:
            continue
        g = sweep.budgets.index(budget)
        below = sum(s for s in sweep.shares[g][:j] if s is not None)
        caps.append((budget, domain, below + sweep.shares[g][j]))
    return shares, pd.DataFrame(caps, columns=["budget", "domain", "top"])


def sweep_chart(sweep: BudgetSweep) -> alt.LayerChart:
    shares, caps = sweep_frames(sweep)
    order = list(sweep.domains)
    area = alt.Chart(shares).mark_area().encode(
        x=alt.X("budget:Q", scale=alt.Scale(type="log"), title="budget (tokens)", axis=alt.Axis(format="~s")),
        y=alt.Y("share:Q", stack="zero", title="share of the budget", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        color=alt.Color("domain:N", sort=order, scale=domain_scale(order)),
        order=alt.Order("domain_rank:Q"),
        tooltip=["domain:N", alt.Tooltip("budget:Q", format=".3s"), alt.Tooltip("share:Q", format=".3f")],
    ).transform_calculate(domain_rank=f"indexof({order!r}, datum.domain)")
    marks = alt.Chart(caps).mark_point(shape="triangle-down", size=110, filled=True, color="black").encode(
        x="budget:Q", y="top:Q",
        tooltip=["domain:N", alt.Tooltip("budget:Q", format=".3s", title=f"reaches {sweep.cap_epochs:g} epochs at")])
    return (area + marks).properties(height=340)


def sweep_objective_chart(sweep: BudgetSweep) -> alt.Chart:
    rows = [(b, name, v) for name, values in sweep.objective.items() for b, v in zip(sweep.budgets, values)
            if v is not None]
    frame = pd.DataFrame(rows, columns=["budget", "option", "objective"])
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("budget:Q", scale=alt.Scale(type="log"), title="budget (tokens)", axis=alt.Axis(format="~s")),
        y=alt.Y("objective:Q", scale=alt.Scale(zero=False), title="predicted objective (loss)"),
        color=alt.Color("option:N", scale=option_scale(list(dict.fromkeys(frame["option"])))), tooltip=["option:N", alt.Tooltip("objective:Q", format=".4f")],
    ).properties(height=260)
