"""Commands for data: ingest, projects, runs, domains (list and set), db upgrade/current."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli._app import app, emit_json, guarded
from engine.cli.options import DbOption, JsonOption, ProjectOption
from engine.config import Settings
from engine.counts import format_count
from engine.ingest.table import ColumnRoles



def _columns(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeated options and comma lists both work: --mixture-cols a,b --mixture-cols c."""
    if not values:
        return None
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="Log files: a RegMix or Olmix pair, tidy CSV, JSONL, domain metadata CSV/YAML.")],
    project: ProjectOption,
    run_id_col: Annotated[Optional[str], typer.Option("--run-id-col", help="Column holding the run id (tidy CSV).")] = None,
    tokens_col: Annotated[Optional[str], typer.Option("--tokens-col", help="Column holding tokens seen at each checkpoint.")] = None,
    params_col: Annotated[Optional[str], typer.Option("--params-col", help="Column holding the model's parameter count.")] = None,
    mixture_cols: Annotated[Optional[list[str]], typer.Option("--mixture-cols", help="Mixture share columns (comma list or repeated).")] = None,
    metric_cols: Annotated[Optional[list[str]], typer.Option("--metric-cols", help="Metric columns (comma list or repeated).")] = None,
    higher_is_better: Annotated[Optional[list[str]], typer.Option("--higher-is-better", help="Targets where higher is better, e.g. acc.")] = None,
    no_create: Annotated[bool, typer.Option("--no-create", help="Fail if the project does not exist.")] = False,
    json_out: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Import run logs into a project (created if new); a rejected import changes nothing."""
    from engine.services.ingest import ingest_files

    roles = ColumnRoles(run_id=run_id_col, tokens=tokens_col, model_params=params_col, mixture=_columns(mixture_cols),
                        metrics=_columns(metric_cols), higher_is_better=_columns(higher_is_better) or ())
    report = guarded(lambda: ingest_files(project, list(files), url=db, create=not no_create, roles=roles))
    if json_out:
        emit_json(report.as_dict())
        return
    typer.echo(report.summary())
    for note in report.notes:
        typer.echo(f"  note: {note}")


@app.command()
def projects(json_out: JsonOption = False, db: DbOption = None) -> None:
    """List projects with their run, domain and target counts."""
    from engine.services.projects import list_projects

    rows = guarded(lambda: list_projects(url=db))
    if json_out:
        emit_json([dataclasses.asdict(p) for p in rows])
        return
    if not rows:
        typer.echo("no projects yet - import logs with `mixplan ingest --project NAME FILE...`")
        return
    table = [("project", "runs", "domains", "targets", "created")]
    table += [(p.name + (" (demo)" if p.is_demo else ""), str(p.runs), str(p.domains), str(p.targets),
               f"{p.created_at:%Y-%m-%d %H:%M}") for p in rows]
    _print_table(table)


@app.command()
def runs(project: ProjectOption, json_out: JsonOption = False,
         limit: Annotated[Optional[int], typer.Option("--limit", help="Show at most this many runs.")] = None,
         pending: Annotated[bool, typer.Option("--pending", help="List the suggested (pending) runs instead.")] = False,
         db: DbOption = None) -> None:
    """List a project's runs: top domain shares, tokens, parameters, source."""
    from engine.services.runs import list_runs

    if pending:
        from engine.cli.next_runs import print_pending

        print_pending(project, as_json=json_out, db=db)
        return

    rows = guarded(lambda: list_runs(project, url=db, limit=limit))
    if json_out:
        emit_json({"project": project, "runs": [dataclasses.asdict(r) for r in rows]})
        return
    if not rows:
        typer.echo(f"project '{project}' has no runs yet")
        return
    table = [("run", "top shares", "tokens", "params", "measurements", "source")]
    for r in rows:
        shares = ", ".join(f"{d} {s:.2f}" for d, s in r.top_domains(3))
        table.append((r.name, shares, format_count(r.tokens), format_count(r.model_params), str(r.n_measurements),
                      r.source_file or "-"))
    _print_table(table)
    typer.echo(f"{len(rows)} runs")


domains_app = typer.Typer(help="List a project's domains, or set their metadata with `domains set`.", no_args_is_help=False)
app.add_typer(domains_app, name="domains")


@domains_app.callback(invoke_without_command=True)
def domains(ctx: typer.Context, project: Annotated[Optional[str], typer.Option("--project", "-p", help="Project name.")] = None,
            json_out: JsonOption = False, db: DbOption = None) -> None:
    """List a project's domains with unique tokens, tags and data path."""
    if ctx.invoked_subcommand is not None:
        return
    if project is None:
        raise typer.BadParameter("give the project with --project.", param_hint="--project")
    from engine.services.runs import list_domains

    rows = guarded(lambda: list_domains(project, url=db))
    if json_out:
        emit_json({"project": project, "domains": [dataclasses.asdict(d) for d in rows]})
        return
    table = [("domain", "unique tokens", "tags", "data path")]
    table += [(d.name, format_count(d.unique_tokens), ", ".join(f"{k}={v}" for k, v in d.tags.items()) or "-",
               d.data_path or "-") for d in rows]
    _print_table(table)


@domains_app.command("set")
def domains_set(
    domain: Annotated[str, typer.Argument(help="Domain name as `mixplan domains` lists it.")],
    project: ProjectOption,
    unique_tokens: Annotated[Optional[str], typer.Option("--unique-tokens", help="Distinct tokens the domain holds, e.g. 1.2B.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="key=value tag, e.g. license=cc-by (repeatable).")] = None,
    data_path: Annotated[Optional[str], typer.Option("--data-path", help="Where the domain's data lives.")] = None,
    json_out: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Set a domain's unique tokens, tags or data path."""
    from engine.services.ingest import set_domain_metadata
    from engine.services.runs import list_domains

    guarded(lambda: set_domain_metadata(project, domain, unique_tokens=unique_tokens, tags=list(tag or []) or None,
                                        data_path=data_path, url=db))
    if json_out:
        row = next(d for d in list_domains(project, url=db) if d.name == domain)
        emit_json({"project": project, "domain": dataclasses.asdict(row)})
        return
    typer.echo(f"domain '{domain}' of '{project}' updated")


@app.command("create-project")
def create_project_cmd(name: Annotated[str, typer.Argument(help="Project name.")],
                       description: Annotated[str, typer.Option("--description", help="One line about it.")] = "",
                       json_out: JsonOption = False, db: DbOption = None) -> None:
    """Create an empty project."""
    from engine.services.projects import create_project

    created = guarded(lambda: create_project(name, description, url=db))
    if json_out:
        emit_json({"project": created, "description": description, "created": True})
        return
    typer.echo(f"project '{created}' created")


@app.command("delete-project")
def delete_project_cmd(name: Annotated[str, typer.Argument(help="Project name.")],
                       yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
                       json_out: JsonOption = False, db: DbOption = None) -> None:
    """Delete a project with its runs, fits and plans."""
    from engine.services.projects import delete_project

    if not yes:
        typer.confirm(f"delete project '{name}' and everything in it?", abort=True, err=json_out)
    guarded(lambda: delete_project(name, url=db))
    if json_out:
        emit_json({"project": name, "deleted": True})
        return
    typer.echo(f"project '{name}' deleted")


db_app = typer.Typer(help="Database schema: upgrade, current revision; clean up killed imports.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(json_out: JsonOption = False, db: DbOption = None) -> None:
    """Create or upgrade the schema to the newest revision."""
    from engine.store.session import make_engine, upgrade

    settings = guarded(Settings.from_env)
    url = db or settings.database_url

    def run() -> str:
        engine = make_engine(url, create_folder=url == settings.default_database_url)  # as every other command
        try:
            upgrade(engine)
            return _current_revision(engine)
        finally:
            engine.dispose()

    revision = guarded(run)
    if json_out:
        emit_json({"revision": revision, "database": _safe_url(url)})
        return
    typer.echo(f"schema at revision {revision} ({_safe_url(url)})")


@db_app.command("clean")
def db_clean(json_out: JsonOption = False, db: DbOption = None) -> None:
    """Delete the staged rows of imports whose process was killed (each import also does it first)."""
    from engine.store import get_engine
    from engine.store.staging import purge_dead_stages

    def run() -> int:
        from sqlalchemy.exc import DBAPIError

        from engine.store.session import store_error

        try:
            with get_engine(db).connect() as connection:
                return purge_dead_stages(connection)
        except DBAPIError as exc:
            raise store_error(exc, "the clean-up failed") from exc

    removed = guarded(run)
    if json_out:
        emit_json({"removed_import_stages": removed})
        return
    typer.echo(f"removed {removed} unfinished import(s) left by killed processes")


@db_app.command("current")
def db_current(json_out: JsonOption = False, db: DbOption = None) -> None:
    """Print the schema revision of the database (none if it was never created)."""
    from engine.store.session import make_engine

    url = db or guarded(Settings.from_env).database_url
    engine = make_engine(url)
    try:
        revision = _current_revision(engine)
    finally:
        engine.dispose()
    if json_out:
        emit_json({"revision": None if revision == "none" else revision, "database": _safe_url(url)})
        return
    typer.echo(revision)


def _current_revision(engine) -> str:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() or "none"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            typer.echo("  ".join("-" * w for w in widths))
