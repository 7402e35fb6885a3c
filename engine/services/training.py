"""Training use-cases: prepare data, train one run, sweep, launch in the background, jobs, export.

The CLI (``engine/cli/train.py``) and the Train page call these; neither holds
logic of its own.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

import yaml
from sqlalchemy import select

from engine.actions import ACTOR_ENV, current_actor, record_action
from engine.config import Settings
from engine.errors import InputError
from engine.services.projects import create_project
from engine.store import Domain, EvalTarget, Measurement, Run, queries, session_scope
from engine.train import records
from engine.train.data import PreparedData, prepare_data, read_prepared
from engine.train.design import Bounds, sweep_design
from engine.train.executor import DEFAULT_MAX_RETRIES, RunOutcome, run_sweep
from engine.train.jobs import JobView, list_jobs, mark_stale_jobs  # noqa: F401  re-exported for the CLI/page
from engine.train.loop import TrainResult, TrainSpec, train

log = logging.getLogger(__name__)


def prepare(out: str | Path, sources: dict[str, list[str]], *, project: str | None = None,
            tokenizer_path: str | None = None, val_fraction: float = 0.05, seed: int = 0,
            skip_bad_lines: bool = False, tags: dict[str, dict] | None = None,
            url: str | None = None) -> PreparedData:
    """Tokenise the domains into ``out``; with a project, record their unique tokens (and tags) there."""
    prepared = prepare_data(out, sources, tokenizer_path=tokenizer_path, val_fraction=val_fraction, seed=seed,
                            skip_bad_lines=skip_bad_lines)
    if project is not None:
        create_project(project, url=url, exist_ok=True)
        records.ensure_domains_and_targets(project, prepared.unique_tokens, str(prepared.root.resolve()), url, tags)
    return prepared


def train_run(spec: TrainSpec, *, url: str | None = None, resume: bool = False,
              on_evaluation: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train one run (the project is created when missing)."""
    create_project(spec.project, url=url, exist_ok=True)
    with session_scope(url) as s:
        record_action(s, "training", spec.project, {"run": spec.name, "tokens": spec.tokens, "resume": resume})
    return train(spec, url=url, resume=resume, on_evaluation=on_evaluation)


def sweep_specs(base: TrainSpec, n: int, budgets: list[int], seed: int, bounds: Bounds | None = None,
                prefix: str = "sweep") -> list[TrainSpec]:
    """The sweep's runs: ``n`` designed mixtures at every budget, each a copy of ``base``."""
    prepared = read_prepared(base.data_dir)
    domains = sorted(prepared.domains)
    points = sweep_design(domains, [prepared.unique_tokens[d] for d in domains], n, budgets, seed, bounds, prefix)
    return [replace(base, name=p.name, mixture=p.mixture, tokens=p.tokens, seed=p.seed, method="static")
            for p in points]


def sweep(specs: list[TrainSpec], *, workers: int = 1, threads_per_worker: int | None = 1, url: str | None = None,
          on_result: Callable[[RunOutcome, int, int], None] | None = None, executor: str = "local",
          ray_address: str | None = None, checkpoint_dir: str | None = None,
          max_retries: int = DEFAULT_MAX_RETRIES) -> list[RunOutcome]:
    """Run the specs on local worker processes or a Ray cluster; domains and targets are created first."""
    if not specs:
        return []
    prepared = read_prepared(specs[0].data_dir)
    create_project(specs[0].project, url=url, exist_ok=True)
    records.ensure_domains_and_targets(specs[0].project, prepared.unique_tokens, str(prepared.root.resolve()), url)
    return run_sweep(specs, workers=workers, threads_per_worker=threads_per_worker, url=url, on_result=on_result,
                     executor=executor, ray_address=ray_address, checkpoint_dir=checkpoint_dir,
                     max_retries=max_retries)


def launch_background(args: list[str], *, url: str | None = None) -> tuple[int, Path]:
    """Start ``mixplan ARGS...`` as a detached process (survives page reloads); returns (pid, log file)."""
    settings = Settings.from_env()
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{args[0]}-{os.getpid()}-{len(list(logs.iterdir()))}.log"
    # The process acts for the page's user: its actions (the training it records) are theirs, not the server's OS user's.
    env = {**os.environ, "MIXPLAN_HOME": str(settings.home), ACTOR_ENV: current_actor()}
    if url:
        env["MIXPLAN_DATABASE_URL"] = url
    with log_path.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-c", "from engine.cli import main; main()", *args],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, cwd=str(Path(__file__).resolve().parents[2]),
        )
    # Reap it when it ends: an unwaited child of a long-lived server stays a zombie (and looks alive).
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    return process.pid, log_path


def export_runs(project: str, out_dir: str | Path, *, url: str | None = None,
                runs_file: str = "runs.jsonl", domains_file: str = "domains.yaml") -> tuple[Path, Path]:
    """Write the project's complete runs as JSONL (one run a line) and its domains as YAML.

    The JSONL keys are the ones ``mixplan ingest`` reads: run_id, mixture, model_params,
    tokens, seed, seq_len, tokenizer, framework, method, measurements [{target, tokens, value}];
    anything else (schedule, provenance) is kept as provenance.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with session_scope(url) as s:
        pid = queries.project_id(s, project)
        targets = dict(s.execute(select(EvalTarget.id, EvalTarget.name).where(EvalTarget.project_id == pid)).all())
        runs = list(s.scalars(select(Run).where(Run.project_id == pid, Run.status == "complete").order_by(Run.id)))
        if not runs:
            raise InputError(f"project '{project}' has no complete runs to export.")
        lines = []
        for run in runs:
            rows = s.scalars(select(Measurement).where(Measurement.run_id == run.id)
                             .order_by(Measurement.target_id, Measurement.tokens_seen))
            doc = {
                "run_id": run.name, "mixture": run.mixture, "model_params": run.model_params,
                "tokens": run.tokens, "seed": run.seed, "seq_len": run.seq_len, "tokenizer": run.tokenizer,
                "framework": run.framework, "method": run.method,
                "measurements": [{"target": targets[m.target_id], "tokens": m.tokens_seen, "value": round(m.value, 6)}
                                 for m in rows],
            }
            if run.schedule:
                doc["schedule"] = run.schedule
            doc.update({k: v for k, v in run.provenance.items() if k not in ("spec_hash", "data_dir")})
            lines.append(json.dumps(doc, sort_keys=False))
        domains = {
            d.name: {"unique_tokens": d.unique_tokens, "tags": d.tags or {}}
            for d in s.scalars(select(Domain).where(Domain.project_id == pid).order_by(Domain.name))
        }
    runs_path, domains_path = out / runs_file, out / domains_file
    runs_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    domains_path.write_text(yaml.safe_dump({"domains": domains}, sort_keys=True), encoding="utf-8")
    return runs_path, domains_path


def project_exists(project: str, url: str | None = None) -> bool:
    with session_scope(url) as s:
        return queries.project_or_none(s, project) is not None


def aioli_trajectories(project: str, url: str | None = None) -> list[dict]:
    """Long-form rows (run, tokens, domain, share) of every online run's proportion trajectory."""
    with session_scope(url) as s:
        pid = queries.project_id(s, project)
        runs = s.execute(select(Run.name, Run.schedule).where(Run.project_id == pid, Run.schedule.is_not(None)))
        return [
            {"run": name, "tokens": entry["tokens"], "domain": domain, "share": share}
            for name, schedule in runs if schedule
            for entry in schedule
            for domain, share in entry["mixture"].items()
        ]


def default_data_dir() -> Path:
    """Where the Train page keeps the demo corpus's prepared data."""
    return Settings.from_env().data_root / "demo-prepared"


def server_data_path(text: str) -> Path:
    """A folder the dashboard may read and fill: relative to the server's data root, or inside it.

    The dashboard takes paths from visitors; only the data root (``MIXPLAN_DATA_ROOT``, default
    ``$MIXPLAN_HOME/data``) is theirs to use. ``..``, absolute paths elsewhere and symlinks out of
    the root are refused with the reason.
    """
    root = Settings.from_env().data_root.resolve()
    if not text.strip():
        raise InputError("the data folder is empty.", hint=f"give a folder under the data root {root}.")
    path = (root / text.strip()).resolve()  # an absolute path replaces root; resolve() follows symlinks and ..
    if path != root and not path.is_relative_to(root):
        raise InputError(f"'{text.strip()}' is outside the server's data root {root}.",
                         hint="use a folder under it; the server's administrator sets it with MIXPLAN_DATA_ROOT.")
    return path
