"""Commands of the loop: store suggested runs as pending (`mixplan suggest`), list them
(`mixplan runs --pending`), train them here (`mixplan train-pending`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Optional

import typer

from engine.cli._app import app, emit_json, guarded
from engine.cli.options import DbOption, JsonOption
from engine.counts import format_count


def print_pending(project: str, *, as_json: bool, db: str | None) -> None:
    """`mixplan runs --pending`: the project's suggested runs, newest round first."""
    from engine.services.next_runs import list_pending, match_results

    def run():
        match_results(project, url=db)
        return list_pending(project, url=db)

    rows = guarded(run)
    if as_json:
        emit_json({"project": project, "pending": [dataclasses.asdict(r) for r in rows]})
        return
    if not rows:
        typer.echo(f"project '{project}' has no suggested runs; ask with `mixplan suggest`")
        return
    for r in rows:
        top = ", ".join(f"{d} {s:.3f}" for d, s in sorted(r.mixture.items(), key=lambda kv: -kv[1])[:3])
        tokens = format_count(r.budget_tokens) if r.budget_tokens else "-"
        typer.echo(f"{r.name}\tround {r.round}\t{r.state}\t{tokens} tokens\t{top}\t{r.run or ''}")
    open_ = sum(r.state != "done" for r in rows)
    typer.echo(f"{len(rows)} suggested runs, {open_} not done")


def store_suggested(project: str, budget_tokens: float, n: int, constraints, *, objective: str, law: str | None,
                    model_params: float | None, seed: int, db: str | None) -> list:
    """`mixplan suggest`: plan, suggest and store the runs as a pending round (a progress bar on stderr)."""
    from engine.services.next_runs import suggest_pending

    return suggest_pending(project, budget_tokens, n, constraints, objective=objective, law=law,
                           model_params=model_params, seed=seed, url=db)


@app.command("train-pending")
def train_pending_command(
    project: Annotated[str, typer.Option("--project", "-p", help="Project name.")],
    data: Annotated[str, typer.Option(help="A folder made by `mixplan prepare-data`.")],
    names: Annotated[str, typer.Option(help="Pending run names, comma-separated (see `mixplan runs --pending`).")],
    model: Annotated[str, typer.Option(help="micro | tiny | small | gpt100m.")] = "micro",
    tokens: Annotated[Optional[str], typer.Option(help="Tokens per run (default: the proxy scale of each).")] = None,
    workers: Annotated[int, typer.Option(help="Parallel worker processes.")] = 1,
    executor: Annotated[str, typer.Option(help="local (worker processes here) | ray (tasks on a Ray cluster).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: RAY_ADDRESS, else a local Ray).")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Train pending runs with mixplan's trainer; their results complete them."""
    from engine.services.next_runs import train_pending
    from engine.counts import parse_whole_count

    chosen = [n.strip() for n in names.split(",") if n.strip()]

    def run():
        return train_pending(project, chosen, data_dir=data, model=model, workers=workers, url=db,
                             tokens=parse_whole_count(tokens, flag="--tokens") if tokens else None,
                             executor=executor, ray_address=ray_address)

    outcomes = guarded(run)
    failed = [o for o in outcomes if o.status == "failed"]
    if as_json:
        emit_json([{"run": o.name, "status": o.status, "error": o.error, "final_losses": o.final_losses}
                   for o in outcomes])
    else:
        for o in outcomes:
            typer.echo(f"{o.name}: {o.status} {o.error or ''}".rstrip())
    if failed:
        raise typer.Exit(1)
