"""Next runs: suggestions become stored *pending* runs, results complete them, rounds show convergence.

The loop is Optuna's ask/tell for mixtures: :func:`suggest_pending` asks (the plan's
most uncertain nearby mixtures become ``pending_run`` rows of one round, with the
proxy budget to train them at and why each was picked); the trainer here or a
cluster elsewhere runs them; :func:`match_results` tells (an uploaded or trained
run completes the pending row whose id it carries, or whose mixture it matches).
Each round keeps the plan it was meant to sharpen, so :func:`rounds` shows how the
plan's prediction and interval moved.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import numpy as np
import yaml
from sqlalchemy import func, select

from engine.errors import InputError
from engine.plan.constraints import Constraints
from engine.plan.exports import write_csv
from engine.plan.plan import Plan
from engine.plan.suggest import Suggestion, suggest_runs
from engine.progress import ProgressCallback, report
from engine.store import PendingRun, Plan as PlanRow, Run, session_scope
from engine.store.dataset import load_dataset, proxy_scale_tokens
from engine.store.queries import find_project
from engine.train.jobs import aware

MIXTURE_MATCH_TOLERANCE = 2e-3  # largest share difference for an uploaded run to count as a pending mixture
PENDING_STATES = ("pending", "running")


@dataclass(frozen=True)
class PendingView:
    name: str
    round: int
    mixture: dict[str, float]
    budget_tokens: float | None
    reason: str
    spread: float | None
    state: str
    plan_id: int | None
    run: str | None
    created_at: datetime


@dataclass(frozen=True)
class RoundView:
    """One round of suggestions and the plan it started from (``round`` 0 = the plan now, when newer)."""

    round: int
    label: str
    runs: int
    done: int
    plan_id: int | None
    predicted: float | None
    interval_width: float | None


def reason_for(spread: float, distance_to_plan: float, basis: str = "") -> str:
    if not math.isfinite(spread):  # the law has no refits: the suggestion says what picked it instead
        return f"{basis} {distance_to_plan:.3f} TV from the plan's mixture."
    return (f"the bootstrap refits disagree by {spread:.3g} (std of the objective) here, "
            f"{distance_to_plan:.3f} TV from the plan's mixture")


def store_suggestion(project: str, plan: Plan, suggestion: Suggestion, *, budget_tokens: float | None,
                     url: str | None = None) -> list[PendingView]:
    """Store the suggested mixtures as pending runs of a new round (the plan must be stored: its id)."""
    with session_scope(url) as s:
        p = find_project(s, project)
        last = s.scalar(select(func.max(PendingRun.round)).where(PendingRun.project_id == p.id)) or 0
        round_ = int(last) + 1
        rows = []
        for i, (mixture, spread, distance) in enumerate(zip(suggestion.mixtures, suggestion.spread,
                                                            suggestion.distance_to_plan), start=1):
            rows.append(PendingRun(
                project_id=p.id, name=f"next-r{round_}-{i:02d}", round=round_,
                mixture={d: round(float(v), 6) for d, v in zip(suggestion.domains, mixture)},
                budget_tokens=budget_tokens, reason=reason_for(float(spread), float(distance), suggestion.basis),
                spread=float(spread) if math.isfinite(spread) else None, state="pending", plan_id=plan.plan_id))
        s.add_all(rows)
    return list_pending(project, round_=round_, url=url)


def suggest_pending(project: str, budget_tokens: float, n: int, constraints: Constraints = Constraints(), *,
                    objective: str = "mean", law: str | None = None, model_params: float | None = None,
                    seed: int = 0, inputs=None, url: str | None = None,
                    progress: ProgressCallback | None = None) -> list[PendingView]:
    """Plan at ``budget_tokens`` (stored), suggest ``n`` proxy runs and store them as a pending round.

    ``inputs`` (planning inputs already loaded, e.g. cached by the dashboard) skips reloading the laws.
    """
    from engine.plan.optimize import OptimizerSettings
    from engine.services.plans import plan_from_inputs, planning_inputs

    if n < 1 or n > 1000:
        raise InputError(f"--n {n}: ask for between 1 and 1000 suggested runs.", hint="e.g. --n 8")
    report(progress, "loading the laws", 0, 3)
    if inputs is None:
        inputs = planning_inputs(project, objective=objective, law=law, model_params=model_params, url=url)
    report(progress, "planning", 1, 3)
    # The plan's own search takes the command's seed too: one seed makes the whole suggestion repeatable.
    plan = plan_from_inputs(inputs, budget_tokens, constraints, settings=OptimizerSettings(seed=seed), store=True,
                            url=url)
    report(progress, "choosing mixtures", 2, 3)
    suggestion = suggest_runs(inputs.model, plan, n, observed=inputs.context.observed, seed=seed)
    with session_scope(url) as s:
        proxy = proxy_scale_tokens(load_dataset(s, project).tokens)
    pending = store_suggestion(project, plan, suggestion, budget_tokens=proxy if math.isfinite(proxy) else None,
                               url=url)
    report(progress, "stored", 3, 3)
    return pending


def _view(row: PendingRun, run_name: str | None) -> PendingView:
    return PendingView(row.name, row.round, dict(row.mixture), row.budget_tokens, row.reason, row.spread, row.state,
                       row.plan_id, run_name, aware(row.created_at))


def list_pending(project: str, *, states: tuple[str, ...] | None = None, round_: int | None = None,
                 url: str | None = None) -> list[PendingView]:
    """Pending runs of ``project`` (newest round first), optionally only some states or one round."""
    with session_scope(url) as s:
        p = find_project(s, project)
        query = (select(PendingRun, Run.name).outerjoin(Run, Run.id == PendingRun.run_id)
                 .where(PendingRun.project_id == p.id).order_by(PendingRun.round.desc(), PendingRun.name))
        if states:
            query = query.where(PendingRun.state.in_(states))
        if round_ is not None:
            query = query.where(PendingRun.round == round_)
        return [_view(row, name) for row, name in s.execute(query)]


def _same_mixture(a: dict[str, float], b: dict[str, float]) -> bool:
    keys = set(a) | set(b)
    return max(abs(float(a.get(k, 0.0)) - float(b.get(k, 0.0))) for k in keys) <= MIXTURE_MATCH_TOLERANCE


def match_results(project: str, *, url: str | None = None) -> list[str]:
    """Complete pending runs that now have a result: a complete run with the pending run's id, or
    (an external cluster renamed it) one whose mixture matches within MIXTURE_MATCH_TOLERANCE.
    Returns the names of the pending runs completed now."""
    completed = []
    with session_scope(url) as s:
        p = find_project(s, project)
        open_rows = s.scalars(select(PendingRun).where(PendingRun.project_id == p.id,
                                                       PendingRun.state.in_(PENDING_STATES))).all()
        if not open_rows:
            return []
        taken = set(s.scalars(select(PendingRun.run_id).where(PendingRun.project_id == p.id,
                                                              PendingRun.run_id.is_not(None))))
        runs = s.execute(select(Run.id, Run.name, Run.mixture).where(Run.project_id == p.id,
                                                                     Run.status == "complete")).all()
        by_name = {name: run_id for run_id, name, _ in runs}
        for row in open_rows:
            run_id = by_name.get(row.name)
            if run_id is None or run_id in taken:
                run_id = next((rid for rid, _, mixture in runs
                               if rid not in taken and mixture and _same_mixture(row.mixture, mixture)), None)
            if run_id is None:
                continue
            row.run_id, row.state = run_id, "done"
            taken.add(run_id)
            completed.append(row.name)
    return completed


def mark_running(project: str, names: list[str], *, url: str | None = None) -> None:
    with session_scope(url) as s:
        p = find_project(s, project)
        for row in s.scalars(select(PendingRun).where(PendingRun.project_id == p.id, PendingRun.name.in_(names))):
            if row.state == "pending":
                row.state = "running"


def reopen_stopped(project: str, *, url: str | None = None) -> list[str]:
    """Running pending rows whose training is no longer running (failed, killed): back to pending."""
    from engine.store import Job

    with session_scope(url) as s:
        p = find_project(s, project)
        rows = s.scalars(select(PendingRun).where(PendingRun.project_id == p.id, PendingRun.state == "running")).all()
        if not rows:
            return []
        live = s.scalar(select(func.count(Job.id)).where(Job.project_id == p.id, Job.kind.in_(("train", "sweep")),
                                                         Job.state.in_(("queued", "running"))))
        if live:
            return []
        for row in rows:
            row.state = "pending"
        return [row.name for row in rows]


def rounds(project: str, *, url: str | None = None) -> list[RoundView]:
    """Per round: how many runs, how many done, and the plan's prediction and interval width at that round;
    a last entry "now" for the newest plan with the same objective and budget when it is newer."""
    with session_scope(url) as s:
        p = find_project(s, project)
        rows = s.execute(select(PendingRun.round, PendingRun.state, PendingRun.plan_id)
                         .where(PendingRun.project_id == p.id).order_by(PendingRun.round)).all()
        by_round: dict[int, dict] = {}
        for round_, state, plan_id in rows:
            entry = by_round.setdefault(round_, {"runs": 0, "done": 0, "plan_id": plan_id})
            entry["runs"] += 1
            entry["done"] += state == "done"
        plans = {r.id: r for r in s.scalars(select(PlanRow).where(
            PlanRow.id.in_([e["plan_id"] for e in by_round.values() if e["plan_id"] is not None])))}
        out = []
        for round_, entry in sorted(by_round.items()):
            predicted, width = _plan_figures(plans.get(entry["plan_id"]))
            out.append(RoundView(round_, f"round {round_}", entry["runs"], entry["done"], entry["plan_id"],
                                 predicted, width))
        last_plan = plans.get(out[-1].plan_id) if out else None
        if last_plan is not None:
            newer = s.scalars(select(PlanRow).where(
                PlanRow.project_id == p.id, PlanRow.id > last_plan.id, PlanRow.objective == last_plan.objective,
                PlanRow.budget_tokens == last_plan.budget_tokens).order_by(PlanRow.id.desc()).limit(1)).first()
            if newer is not None:
                predicted, width = _plan_figures(newer)
                out.append(RoundView(len(out) + 1, "now", 0, 0, newer.id, predicted, width))
        return out


def _plan_figures(row: PlanRow | None) -> tuple[float | None, float | None]:
    if row is None:
        return None, None
    rec = (row.result or {}).get("recommended") or {}
    lo, hi = (rec.get("objective_interval") or (None, None))[:2]
    width = None if lo is None or hi is None else float(hi) - float(lo)
    return rec.get("objective"), width


# -- downloads: run them elsewhere ----------------------------------------------------------------


def pending_csv(pending: list[PendingView]) -> str:
    """run_id, budget, then one column per domain: the layout the Upload page reads back as a mixture file."""
    domains = sorted({d for p in pending for d in p.mixture})
    rows = [[p.name, "" if p.budget_tokens is None else int(p.budget_tokens),
             *(f"{p.mixture.get(d, 0.0):.6f}" for d in domains)] for p in pending]
    return write_csv(["run_id", "tokens", *domains], rows)


def pending_trainer_config(pending: list[PendingView], *, project: str, data_dir: str = "DATA_DIR",
                           model: str = "micro") -> str:
    """YAML: one `mixplan train` spec per pending run (run_id kept, so results match back by name)."""
    runs = [{"name": p.name, "project": project, "data_dir": data_dir, "tokens": int(p.budget_tokens or 0),
             "model": model, "mixture": p.mixture, "method": "static"} for p in pending]
    return yaml.safe_dump({"runs": runs}, sort_keys=False)


def pending_commands(pending: list[PendingView], *, project: str, data_dir: str = "DATA_DIR",
                     model: str = "micro") -> str:
    """A shell script: one `mixplan train` line per pending run."""
    lines = ["#!/bin/sh", "# mixplan's pending runs; set DATA_DIR to a folder made by `mixplan prepare-data`.", "set -e"]
    for p in pending:
        mixture = ",".join(f"{d}={v:.6f}" for d, v in p.mixture.items())
        lines.append(f"mixplan train --project {json.dumps(project)} --data \"{data_dir}\" --name {p.name} "
                     f"--tokens {int(p.budget_tokens or 0)} --model {model} --mixture {mixture}")
    return "\n".join(lines) + "\n"


def train_specs(project: str, names: list[str], *, data_dir: str, model: str = "micro", seed: int = 0,
                tokens: int | None = None, url: str | None = None) -> list:
    """TrainSpecs of the named pending runs (for the trainer here); their domains must be the data's."""
    from engine.train.data import read_prepared
    from engine.train.loop import TrainSpec

    prepared = read_prepared(data_dir)
    wanted = {p.name: p for p in list_pending(project, url=url) if p.name in names}
    missing = [n for n in names if n not in wanted]
    if missing:
        raise InputError(f"no pending run named {', '.join(missing)} in project '{project}'.",
                         hint="list them with `mixplan runs --pending`.")
    specs = []
    for name in names:
        p = wanted[name]
        unknown = sorted(d for d, v in p.mixture.items() if v > 0 and d not in prepared.domains)
        if unknown:
            raise InputError(f"pending run {name} uses domains the data folder {data_dir} lacks: {', '.join(unknown)}.",
                             hint="prepare a folder with these domains, or run it elsewhere and upload the results.")
        if not (tokens or p.budget_tokens):
            raise InputError(f"pending run {name} has no proxy budget (the project's runs state no tokens).",
                             hint="run it elsewhere and upload the results.")
        specs.append(TrainSpec(project=project, data_dir=str(data_dir), name=name, tokens=int(tokens or p.budget_tokens),
                               mixture={d: v for d, v in p.mixture.items() if v > 0}, model=model, seed=seed))
    return specs


def train_pending(project: str, names: list[str], *, data_dir: str, model: str = "micro", workers: int = 1,
                  tokens: int | None = None, url: str | None = None, on_result: Callable | None = None,
                  executor: str = "local", ray_address: str | None = None) -> list:
    """Train the named pending runs (a sweep job), then complete them from their results.

    ``tokens`` overrides the proxy budget (a quick look); such a run is still matched by its name.
    ``executor``: local worker processes, or ``ray`` (tasks on the cluster at ``ray_address``, else RAY_ADDRESS).
    """
    from engine.services.training import sweep

    specs = train_specs(project, names, data_dir=data_dir, model=model, tokens=tokens, url=url)
    mark_running(project, names, url=url)
    try:
        outcomes = sweep(specs, workers=workers, url=url, on_result=on_result, executor=executor,
                         ray_address=ray_address)
    finally:
        match_results(project, url=url)
        reopen_stopped(project, url=url)
    return outcomes


def pending_frame_rows(pending: list[PendingView], top: int | None = None) -> list[dict]:
    """Rows for a table: name, round, state, budget, reason, then the shares (largest domains first)."""
    if not pending:
        return []
    domains = sorted({d for p in pending for d in p.mixture})
    totals = np.array([sum(p.mixture.get(d, 0.0) for p in pending) for d in domains])
    order = [domains[i] for i in np.argsort(-totals, kind="stable")]
    shown = order if top is None else order[:top]
    rows = []
    for p in pending:
        row = {"run": p.name, "round": p.round, "state": p.state, "result run": p.run or "",
               "tokens": p.budget_tokens, "why": p.reason}
        row.update({d: p.mixture.get(d, 0.0) for d in shown})
        if len(shown) < len(order):
            row["other"] = 1.0 - sum(p.mixture.get(d, 0.0) for d in shown)
        rows.append(row)
    return rows
