"""Commands: fit (compare laws), predict (score candidate mixtures), laws (stored fits), use-law (override)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli._app import app, emit_json, guarded
from engine.cli.options import DbOption, JsonOption, ProjectOption, SeedOption, seed_or_default

TargetOption = Annotated[Optional[str], typer.Option("--target", "-t", help="Fit/predict one evaluation target.")]
ObjectiveOption = Annotated[str, typer.Option("--objective", "-o", help="'mean' (default), a target name, or 'target=weight,...'.")]


def _objective(target: str | None, objective: str) -> str:
    return target if target else objective


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _report_table(report) -> str:
    from engine.services.fits import REFITS_SKIPPED_NOTE

    lines = [f"project {report.project} | objective {report.objective} | {report.n_runs} runs | data {report.data_hash[:12]}",
             f"{'law':<12} {'smooth':<6} {'spearman':>9} {'pearson':>8} {'mae':>8} {'rmse':>8} {'top1 rank':>9} {'top1 gap':>9} "
             f"{'cover90':>8} {'seconds':>8}  note"]
    for r in report.rows:
        mark = "*" if r.law == report.default_law else " "
        note = r.error or ("reused" if r.reused else "")
        if r.not_converged:
            note = (note + "; " if note else "") + f"did not converge on: {', '.join(r.not_converged)}"
        if r.refits_skipped:
            note = (note + "; " if note else "") + REFITS_SKIPPED_NOTE
        lines.append(f"{mark}{r.law:<11} {'yes' if r.smooth else 'no':<6} {_fmt(r.spearman):>9} {_fmt(r.pearson):>8} "
                     f"{_fmt(r.mae):>8} {_fmt(r.rmse):>8} {r.top1_rank:>9} {_fmt(r.top1_gap):>9} {_fmt(r.coverage, 3):>8} "
                     f"{r.seconds:>8.1f}  {note}")
    which = "set by the user" if report.overridden else "best held-out Spearman, MAE breaks ties"
    lines.append(f"* default law: {report.default_law} ({which}); figures are held-out predictions of K-fold CV over runs")
    lines.append("cover90: share of held-out runs inside their 90% interval, calibrated on the other folds (aim: 0.85-0.95)")
    if any(r.refits_skipped for r in report.rows):
        lines.append("no refits: a law this far behind the best (0.02 Spearman) gets its interval from held-out residuals; "
                     "`mixplan fit --laws NAME` alone refits it")
    return "\n".join(lines)


@app.command()
def fit(
    project: ProjectOption,
    laws: Annotated[Optional[str], typer.Option("--laws", help="Comma list of laws (default: all): linear, exponential, gp, lightgbm.")] = None,
    target: TargetOption = None,
    objective: ObjectiveOption = "mean",
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 5,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap refits for intervals.")] = 100,
    seed: SeedOption = None,
    json_out: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Fit and cross-validate mixing laws; print the comparison (fits on unchanged data are reused)."""
    from engine.cli.progress import progress_bar
    from engine.services.fits import fit_project

    names = [x.strip() for x in laws.split(",") if x.strip()] if laws else None
    with progress_bar("fit") as progress:
        report = guarded(lambda: fit_project(project, objective=_objective(target, objective), laws=names,
                                             folds=folds, bootstrap=bootstrap, seed=seed_or_default(seed), url=db,
                                             progress=progress))
    if json_out:
        emit_json({"project": report.project, "objective": report.objective, "data_hash": report.data_hash,
                   "n_runs": report.n_runs, "default_law": report.default_law, "overridden": report.overridden,
                   "rows": [_row_json(r) for r in report.rows]})
        return
    typer.echo(_report_table(report))


def _row_json(row) -> dict:
    out = dict(row.__dict__)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


@app.command()
def predict(
    project: ProjectOption,
    mixtures: Annotated[Path, typer.Option("--mixtures", "-m", help="CSV of candidate mixtures (same shape as an uploaded mixture file).")],
    law: Annotated[Optional[str], typer.Option("--law", help="Law to use (default: the project's default for the objective).")] = None,
    target: TargetOption = None,
    objective: ObjectiveOption = "mean",
    json_out: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Predict the objective of candidate mixtures, with a 90% bootstrap interval."""
    from engine.services.fits import predict_mixtures

    table = guarded(lambda: predict_mixtures(project, mixtures, objective=_objective(target, objective), law=law, url=db))
    if json_out:
        emit_json({"law": table.law, "objective": table.objective, "notes": table.notes, "candidates": [
            {"name": name, "mixture": dict(zip(table.domains, map(float, table.mixtures[i]))),
             "predicted": float(table.predicted[i]), "lower": float(table.lower[i]), "upper": float(table.upper[i]),
             "targets": dict(zip(table.targets, map(float, table.predicted_targets[i])))}
            for i, name in enumerate(table.names)]})
        return
    typer.echo(f"law {table.law} | objective {table.objective} (lower is better) | 90% bootstrap interval")
    for note in table.notes:
        typer.echo(f"note: {note}")
    width = max([len(n) for n in table.names] + [9])
    typer.echo(f"{'candidate':<{width}} {'predicted':>10} {'lower':>10} {'upper':>10}")
    for i, name in enumerate(table.names):
        typer.echo(f"{name:<{width}} {table.predicted[i]:>10.4f} {table.lower[i]:>10.4f} {table.upper[i]:>10.4f}")


@app.command("laws")
def laws_command(
    project: ProjectOption,
    target: TargetOption = None,
    objective: ObjectiveOption = "mean",
    json_out: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List the stored fits for an objective on the project's current data, and the default law."""
    from engine.services.fits import default_law, fit_summaries_now

    key = _objective(target, objective)
    fits = guarded(lambda: fit_summaries_now(project, objective=key, url=db))
    chosen = guarded(lambda: default_law(project, objective=key, url=db, fits=fits))
    rows = [{"law": f.law, "objective": f.objective, "options": f.options, "seconds": f.seconds,
             "created_at": f.created_at, **{k: f.cv_metrics.get(k) for k in ("spearman", "mae", "top1_rank")}} for f in fits]
    if json_out:
        emit_json({"default_law": chosen, "fits": rows})
        return
    if not rows:
        typer.echo("no stored fits for this objective on the current data; run `mixplan fit`.")
        return
    for r in rows:
        mark = "*" if r["law"] == chosen else " "
        typer.echo(f"{mark}{r['law']:<12} spearman {_fmt(r['spearman'])}  mae {_fmt(r['mae'])}  fitted {r['created_at']:%Y-%m-%d %H:%M}")


@app.command("use-law")
def use_law(
    project: ProjectOption,
    law: Annotated[Optional[str], typer.Argument(help="Law to use for this objective; omit with --clear.")] = None,
    target: TargetOption = None,
    objective: ObjectiveOption = "mean",
    clear: Annotated[bool, typer.Option("--clear", help="Go back to the law with the best CV figures.")] = False,
    json_out: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Override the project's default law for an objective (the planner then uses it)."""
    from engine.cli._app import fail
    from engine.errors import InputError
    from engine.services.fits import set_default_law

    if not clear and not law:
        fail(InputError("give a law name or --clear.", hint="e.g. `mixplan use-law -p P gp`."))
    key = guarded(lambda: set_default_law(project, _objective(target, objective), None if clear else law, url=db))
    if json_out:
        emit_json({"project": project, "objective": key, "law": None if clear else law})
        return
    typer.echo(f"objective {key}: " + ("back to the best CV law" if clear else f"uses {law}"))
