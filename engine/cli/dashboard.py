"""Commands: dashboard (start the Streamlit app) and demo (load the demo project)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli._app import app, emit_json, guarded
from engine.cli.options import DbOption, JsonOption
from engine.config import Settings

APP_DIR = Path(__file__).resolve().parents[2] / "app"


def streamlit_command(host: str, port: int, auth_file: Path | None = None) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage statistics, no file watcher.

    The flags repeat ``app/.streamlit/config.toml`` on purpose: Streamlit reads that
    file only from the working directory, and the statistics must stay off wherever
    the command is started from (the working directory is kept so that relative
    paths in ``MIXPLAN_DATABASE_URL`` / ``MIXPLAN_HOME`` mean what the user meant).
    """
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_DIR / "streamlit_app.py"),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--client.showErrorDetails", "none",
        # No full garbage collection after every script run: the job pollers rerun their fragment every
        # 0.25-1 s, and each gc.collect(2) held the GIL over the whole server heap, so a plan job in a
        # server thread took 16-29 s instead of 1 s (py-spy on the server, bench/ui_latency.py).
        "--runner.postScriptGC", "false",
        "--server.maxUploadSize", str(Settings.from_env().max_upload_mb),
        *(["--secrets.files", str(auth_file)] if auth_file else []),
    ]


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="Port to serve the dashboard on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network (needs sign-in).")] = "127.0.0.1",
    auth_file: Annotated[Optional[Path], typer.Option(help="Sign-in: a TOML file with Streamlit's [auth] section (default: MIXPLAN_AUTH_FILE).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Listen on a non-loopback address without sign-in.")] = False,
    db: DbOption = None,
) -> None:
    """Start the dashboard (Streamlit) at http://HOST:PORT, on the demo project at first start."""
    from engine.auth_config import check_auth_file, check_exposure
    from engine.config import Settings

    auth_file = auth_file or Settings.from_env().auth_file
    if auth_file is not None:
        guarded(lambda: check_auth_file(auth_file))
    guarded(lambda: check_exposure(host, auth_file, no_auth))
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    if db:
        env["MIXPLAN_DATABASE_URL"] = db  # the dashboard's process reads the store from its environment
    signin = "sign-in on" if auth_file else "no sign-in"
    typer.echo(f"mixplan dashboard: http://{host}:{port}  ({signin}; Ctrl+C stops it)", err=True)
    sys.stdout.flush()
    # exec, not a child process: Ctrl+C and a kill reach Streamlit itself, nothing is left behind.
    os.execve(sys.executable, streamlit_command(host, port, auth_file), env)


@app.command()
def demo(
    reset: Annotated[bool, typer.Option("--reset", help="Delete the demo project and load it again.")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Load the demo project from the logs under examples/ (what the dashboard does on first start)."""
    from engine.services.demo import DEMO_PROJECT, load_demo_project
    from engine.services.projects import list_projects

    guarded(lambda: load_demo_project(url=db, reset=reset))
    summary = next(p for p in list_projects(url=db) if p.name == DEMO_PROJECT)
    if as_json:
        emit_json({"project": summary.name, "description": summary.description, "runs": summary.runs,
                   "domains": summary.domains, "targets": summary.targets})
        return
    typer.echo(f"{summary.name}: {summary.runs} runs, {summary.domains} domains, {summary.targets} targets")
    typer.echo(summary.description)
