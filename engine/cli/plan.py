"""Commands: plan, sweep-budgets, suggest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli._app import app, emit_json, guarded
from engine.cli.options import DbOption, JsonOption, ProjectOption, SeedOption, seed_or_default
from engine.cli.progress import progress_bar
from engine.errors import InputError
from engine.counts import format_count, parse_count, parse_shares
from engine.plan.constraints import Constraints
from engine.plan.exports import FORMATS, export

BudgetOpt = Annotated[str, typer.Option("--budget", help="Token budget of the target run: 300B, 2.5T, 3e11.")]
ParamsOpt = Annotated[Optional[str], typer.Option("--params", help="Target model size, e.g. 1B (optional).")]
ObjectiveOpt = Annotated[str, typer.Option("--objective", help="'mean' of all targets or one target's name.")]
LawOpt = Annotated[Optional[str], typer.Option("--law", help="Law to plan with (default: the CV winner).")]
EpochsOpt = Annotated[float, typer.Option(
    "--max-epochs", help="Epoch cap per domain with known unique tokens; 0 = no cap. Default 4: "
                         "Muennighoff et al. 2023 find up to ~4 epochs nearly as good as fresh data.")]
MinOpt = Annotated[Optional[list[str]], typer.Option("--min", help="Lower bound NAME=SHARE (repeatable).")]
MaxOpt = Annotated[Optional[list[str]], typer.Option("--max", help="Upper bound NAME=SHARE (repeatable).")]
FixOpt = Annotated[Optional[list[str]], typer.Option("--fix", help="Fixed share NAME=SHARE (repeatable).")]
ExcludeOpt = Annotated[Optional[list[str]], typer.Option("--exclude", help="Domain to leave out (repeatable).")]
ExcludeTagOpt = Annotated[Optional[list[str]], typer.Option(
    "--exclude-tag", help="Leave out domains with this tag, e.g. license=noncommercial (repeatable).")]
RepetitionOpt = Annotated[str, typer.Option("--repetition", help="muennighoff (default) or goyal.")]


def build_constraints(min_, max_, fix, exclude, exclude_tag, max_epochs: float) -> Constraints:
    if max_epochs < 0:
        raise InputError(f"--max-epochs {max_epochs:g} is negative.", hint="give a positive cap, or 0 for none.")
    return Constraints(lower=parse_shares(min_, flag="--min"), upper=parse_shares(max_, flag="--max"),
                       fixed=parse_shares(fix, flag="--fix"), exclude=tuple(exclude or ()),
                       exclude_tags=tuple(exclude_tag or ()), max_epochs=max_epochs or None)


def _repetition(form: str) -> str:
    if form not in ("muennighoff", "goyal"):
        raise InputError(f"--repetition '{form}' is unknown.", hint="use muennighoff or goyal.")
    return form


@app.command("plan")
def plan_command(
    project: ProjectOption,
    budget: BudgetOpt,
    params: ParamsOpt = None,
    objective: ObjectiveOpt = "mean",
    law: LawOpt = None,
    max_epochs: EpochsOpt = 4.0,
    min_: MinOpt = None,
    max_: MaxOpt = None,
    fix: FixOpt = None,
    exclude: ExcludeOpt = None,
    exclude_tag: ExcludeTagOpt = None,
    repetition: RepetitionOpt = "muennighoff",
    fmt: Annotated[str, typer.Option("--format", help="table, " + ", ".join(FORMATS) + ".")] = "table",
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the export to this file.")] = None,
    seed: SeedOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="The plan as one JSON document (same as --format json).")] = False,
    db: DbOption = None,
) -> None:
    """Recommend the mixture for a token budget, with intervals and baselines (stored in the project)."""

    def run():
        from dataclasses import replace

        from engine.plan.optimize import OptimizerSettings
        from engine.services.plans import make_project_plan

        if fmt not in ("table", *FORMATS):
            raise InputError(f"--format '{fmt}' is unknown.", hint="use table, " + ", ".join(FORMATS) + ".")
        if json_out and fmt not in ("table", "json"):
            raise InputError(f"--json and --format {fmt} ask for two formats.", hint="give one of them.")
        chosen = "json" if json_out else fmt
        budget_tokens = parse_count(budget, what="a budget", flag="--budget")
        model_params = parse_count(params, what="a model size", flag="--params") if params else None
        constraints = build_constraints(min_, max_, fix, exclude, exclude_tag, max_epochs)
        with progress_bar("plan") as progress:
            plan = make_project_plan(project, budget_tokens, constraints, objective=objective, law=law,
                                     model_params=model_params, repetition_form=_repetition(repetition),
                                     settings=replace(OptimizerSettings(), seed=seed_or_default(seed)), url=db,
                                     progress=progress)
        text = render_table(plan) if chosen == "table" else export(plan, chosen)
        if out is not None:
            out.write_text(text)
            typer.echo(f"wrote {chosen} plan {plan.plan_id} to {out}", err=True)
        else:
            typer.echo(text, nl=not text.endswith("\n"))

    guarded(run)


def render_table(plan) -> str:
    rec = plan.recommended
    lines = [f"plan {plan.plan_id} for project '{plan.project}': {format_count(plan.budget_tokens)} tokens, "
             f"objective {plan.objective}, law {plan.law}"]
    lines.append(f"{'domain':<28}{'share':>8}{'±spread':>9}{'epochs':>9}")
    for d, share in rec.mixture.items():
        e = rec.epochs[d]
        spread = "-" if plan.optimum_spread is None else f"{plan.optimum_spread[d]:.3f}"
        lines.append(f"{d:<28}{share:>8.3f}{spread:>9}"
                     f"{(f'{e:.2f}' if e is not None else '-'):>9}")
    lines.append("")
    lines.append(f"{'option':<22}{'objective':>10}{'90% interval':>22}{'dist. to runs':>15}")
    for o in [rec, *plan.baselines]:
        lo, hi = o.objective_interval
        dist = "-" if o.distance_to_nearest_run is None else f"{o.distance_to_nearest_run:.3f}"
        lines.append(f"{o.name + (' *' if o.adjusted else ''):<22}{o.objective:>10.4f}"
                     f"{f'[{lo:.4f}, {hi:.4f}]':>22}{dist:>15}")
    if any(o.adjusted for o in plan.baselines):
        lines.append("* projected onto the constraints")
    lines.append("")
    lines += [f"note: {n}" for n in plan.notes]
    lines.append(f"intervals from {plan.interval_source}; ±spread: std of each share across the refits' optima"
                 + (" (unknown: no refits)" if plan.optimum_spread is None else ""))
    lines.append(f"trust region: {plan.trust['rule']}")
    return "\n".join(lines) + "\n"


@app.command("sweep-budgets")
def sweep_command(
    project: ProjectOption,
    low: Annotated[str, typer.Option("--low", help="Smallest budget of the grid.")] = "1e8",
    high: Annotated[str, typer.Option("--high", help="Largest budget of the grid.")] = "1e13",
    points: Annotated[int, typer.Option("--points", help="Budgets in the geometric grid.")] = 12,
    params: ParamsOpt = None,
    objective: ObjectiveOpt = "mean",
    law: LawOpt = None,
    max_epochs: EpochsOpt = 4.0,
    min_: MinOpt = None,
    max_: MaxOpt = None,
    fix: FixOpt = None,
    exclude: ExcludeOpt = None,
    exclude_tag: ExcludeTagOpt = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The plan across a geometric grid of budgets: shares, cap points, objective vs baselines."""

    def run():
        from engine.plan.sweep import budget_grid
        from engine.services.plans import sweep_project

        if points < 2 or points > 200:
            raise InputError(f"--points {points}: give between 2 and 200 budgets.", hint="e.g. --points 12")
        grid = budget_grid(parse_count(low, what="a budget", flag="--low"),
                           parse_count(high, what="a budget", flag="--high"), points)
        model_params = parse_count(params, what="a model size", flag="--params") if params else None
        with progress_bar("sweep") as progress:
            sweep = sweep_project(project, grid, build_constraints(min_, max_, fix, exclude, exclude_tag, max_epochs),
                                  objective=objective, law=law, model_params=model_params, url=db, progress=progress)
        if as_json:
            emit_json(sweep.to_dict())
            return
        header = f"{'budget':>8}  " + " ".join(f"{d[:10]:>10}" for d in sweep.domains) + f"  {'objective':>10}"
        typer.echo(header)
        for g, budget in enumerate(sweep.budgets):
            shares = " ".join(f"{'-' if s is None else f'{s:.3f}':>10}" for s in sweep.shares[g])
            obj = sweep.objective["plan"][g]
            typer.echo(f"{format_count(budget):>8}  {shares}  {'-' if obj is None else f'{obj:.4f}':>10}")
        for d, b in sweep.cap_budget.items():
            if b is not None:
                typer.echo(f"{d} reaches {sweep.cap_epochs:g} epochs at {format_count(b)} tokens")
        for b, why in sweep.infeasible.items():
            typer.echo(f"no plan at {b} tokens: {why}")

    guarded(run)


@app.command("suggest")
def suggest_command(
    project: ProjectOption,
    budget: BudgetOpt,
    n: Annotated[int, typer.Option("--n", help="How many proxy runs to suggest.")] = 8,
    params: ParamsOpt = None,
    objective: ObjectiveOpt = "mean",
    law: LawOpt = None,
    max_epochs: EpochsOpt = 4.0,
    min_: MinOpt = None,
    max_: MaxOpt = None,
    fix: FixOpt = None,
    exclude: ExcludeOpt = None,
    exclude_tag: ExcludeTagOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the mixture CSV here.")] = None,
    as_json: JsonOption = False,
    seed: SeedOption = None,
    db: DbOption = None,
) -> None:
    """Proxy mixtures whose results would most narrow the plan's interval, stored as pending runs (a CSV)."""

    def run():
        from engine.cli.next_runs import store_suggested
        from engine.services.next_runs import pending_csv

        model_params = parse_count(params, what="a model size", flag="--params") if params else None
        pending = store_suggested(project, parse_count(budget, what="a budget", flag="--budget"), n,
                                  build_constraints(min_, max_, fix, exclude, exclude_tag, max_epochs),
                                  objective=objective, law=law, model_params=model_params,
                                  seed=seed_or_default(seed), db=db)
        if as_json:
            emit_json({"round": pending[0].round if pending else None,
                       "pending": [{"run_id": p.name, "mixture": p.mixture, "tokens": p.budget_tokens,
                                    "reason": p.reason, "spread": p.spread} for p in pending]})
            return
        text = pending_csv(pending)
        if out is not None:
            out.write_text(text)
            typer.echo(f"stored {len(pending)} pending runs (round {pending[0].round}); wrote them to {out}", err=True)
        else:
            typer.echo(text, nl=False)
            typer.echo(f"stored {len(pending)} pending runs (round {pending[0].round}); "
                       "see `mixplan runs --pending`", err=True)

    guarded(run)
