"""Commands of the proxy trainer: prepare-data, train, sweep, demo-corpus, jobs, export-runs."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli._app import app, emit_json, guarded
from engine.cli.options import DbOption, JsonOption, SeedOption, seed_or_default
from engine.errors import InputError



def _sources(pairs: list[str]) -> dict[str, list[str]]:
    sources: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise InputError(f"'{pair}' is not NAME=PATH.", hint="write e.g. code=data/code/ prose=data/prose.jsonl.")
        sources.setdefault(name, []).append(path)
    return sources


def _verbose(quiet: bool) -> None:
    if not quiet:
        logging.getLogger("engine").setLevel(logging.INFO)


@app.command("prepare-data")
def prepare_data_command(
    domains: Annotated[list[str], typer.Argument(help="NAME=PATH pairs; PATH is a file, folder or glob of .txt/.jsonl.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the token files and manifest.")],
    project: Annotated[Optional[str], typer.Option(help="Record the domains' unique tokens in this project.")] = None,
    tokenizer: Annotated[Optional[Path], typer.Option(help="A local Hugging Face tokenizer.json (default: bytes).")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of each domain's documents held out for validation.")] = 0.05,
    seed: SeedOption = None,
    skip_bad_lines: Annotated[bool, typer.Option("--skip-bad-lines", help="Leave out bad lines instead of stopping.")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Tokenise domains into memory-mapped token files with a held-out validation slice each."""
    from engine.services.training import prepare

    prepared = guarded(lambda: prepare(out, _sources(domains), project=project, tokenizer_path=tokenizer,
                                       val_fraction=val_fraction, seed=seed_or_default(seed), skip_bad_lines=skip_bad_lines, url=db))
    doc = {"root": str(prepared.root), "tokenizer": prepared.tokenizer, "status": prepared.status,
           "domains": {n: {"train_tokens": d.train_tokens, "val_tokens": d.val_tokens, "status": d.status,
                           "skipped_lines": d.skipped_lines} for n, d in prepared.domains.items()}}
    if as_json:
        emit_json(doc)
        return
    for name, d in doc["domains"].items():
        typer.echo(f"{name:<16} {d['train_tokens']:>12,} train  {d['val_tokens']:>10,} val tokens  {d['status']}")


def _spec_options(project, data, name, tokens, mixture, method, model, seq_len, batch_size, lr, seed, evals,
                  device, compile_model, threads, aioli_rounds, aioli_lp_rounds, aioli_lp_steps,
                  aioli_one_hot, aioli_eta, aioli_no_normalize):
    from engine.train.aioli import AioliOptions
    from engine.counts import parse_shares, parse_whole_count
    from engine.train.loop import TrainSpec

    return TrainSpec(
        project=project, data_dir=str(data), name=name or "", tokens=parse_whole_count(tokens, flag="--tokens"),
        mixture=parse_shares(mixture, flag="--mixture"), method=method, model=model, seq_len=seq_len,
        batch_size=batch_size, lr=lr, seed=seed, evals=evals, device=device, compile=compile_model, threads=threads,
        aioli=AioliOptions(rounds=aioli_rounds, lp_rounds=aioli_lp_rounds, lp_steps=aioli_lp_steps,
                           one_hot_factor=aioli_one_hot, eta=aioli_eta, normalize_a=not aioli_no_normalize),
    )


@app.command("train")
def train_command(
    project: Annotated[str, typer.Option(help="Project the run is recorded in.")],
    data: Annotated[Path, typer.Option(help="A folder made by `mixplan prepare-data`.")],
    tokens: Annotated[str, typer.Option(help="Training tokens, e.g. 500k or 2M.")],
    mixture: Annotated[Optional[str], typer.Option(help="code=0.4,prose=0.6 (static runs).")] = None,
    method: Annotated[str, typer.Option(help="static | stratified (uniform) | aioli.")] = "static",
    name: Annotated[Optional[str], typer.Option(help="Run name (default: derived from the settings).")] = None,
    model: Annotated[str, typer.Option(help="micro | tiny | small | gpt100m.")] = "tiny",
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence.")] = 128,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    seed: SeedOption = None,
    evals: Annotated[int, typer.Option(help="Evaluations over the run (10 = every 10%).")] = 10,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    compile_model: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a stopped run from its checkpoint.")] = False,
    checkpoint_seconds: Annotated[float, typer.Option(help="Least seconds between checkpoints (0 = every evaluation).")] = 30.0,
    aioli_rounds: Annotated[int, typer.Option(help="Aioli: update rounds over the run.")] = 4,
    aioli_lp_rounds: Annotated[int, typer.Option(help="Aioli: LearnParams sweeps per round.")] = 1,
    aioli_lp_steps: Annotated[int, typer.Option(help="Aioli: steps per perturbed sub-run.")] = 4,
    aioli_one_hot: Annotated[float, typer.Option(help="Aioli: one-hot smoothing factor f in (0, 1].")] = 1.0,
    aioli_eta: Annotated[float, typer.Option(help="Aioli: exponentiated-gradient step.")] = 1.0,
    aioli_no_normalize: Annotated[bool, typer.Option("--aioli-no-normalize", help="Aioli: do not normalise A.")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Train one proxy run; its validation losses land in the project as they are measured."""
    from engine.services.training import train_run

    def run():
        spec = _spec_options(project, data, name, tokens, mixture, method, model, seq_len, batch_size, lr,
                             seed_or_default(seed),
                             evals, device, compile_model, threads, aioli_rounds, aioli_lp_rounds, aioli_lp_steps,
                             aioli_one_hot, aioli_eta, aioli_no_normalize)
        spec = replace(spec, checkpoint_seconds=checkpoint_seconds)
        if not name:
            spec = replace(spec, name=f"{method}-{model}-{tokens}-s{spec.seed}-{spec.fingerprint()[:8]}")
        _verbose(as_json)
        return spec, train_run(spec, url=db, resume=resume)

    spec, result = guarded(run)
    doc = {"run": spec.name, "status": result.status, "steps": result.steps, "tokens": result.tokens,
           "seconds": round(result.seconds, 2), "final_losses": result.final_losses, "mixture": result.mixture}
    if as_json:
        emit_json(doc)
    else:
        typer.echo(f"run {spec.name}: {result.status}; final losses " +
                   ", ".join(f"{k}={v:.4f}" for k, v in result.final_losses.items()))


@app.command("sweep")
def sweep_command(
    project: Annotated[str, typer.Option(help="Project the runs are recorded in.")],
    data: Annotated[Path, typer.Option(help="A folder made by `mixplan prepare-data`.")],
    n: Annotated[int, typer.Option("--n", help="Mixtures in the design (each is run at every budget).")] = 16,
    budgets: Annotated[str, typer.Option(help="Token budgets, e.g. 250k,1M.")] = "250k,1M",
    seed: SeedOption = None,
    workers: Annotated[int, typer.Option(help="Parallel worker processes.")] = 1,
    threads: Annotated[int, typer.Option(help="torch threads per worker.")] = 1,
    model: Annotated[str, typer.Option(help="micro | tiny | small | gpt100m.")] = "tiny",
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence.")] = 128,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    evals: Annotated[int, typer.Option(help="Evaluations per run.")] = 10,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    prefix: Annotated[str, typer.Option(help="Run names start with this.")] = "sweep",
    executor: Annotated[str, typer.Option(help="local (worker processes here) | ray (tasks on a Ray cluster).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address, e.g. 10.0.0.5:6379 (default: RAY_ADDRESS, else a local Ray).")] = None,
    checkpoint_dir: Annotated[Optional[Path], typer.Option(help="Checkpoints, on a path every node can read (default: MIXPLAN_CHECKPOINT_DIR or MIXPLAN_HOME/checkpoints).")] = None,
    max_retries: Annotated[int, typer.Option(help="Restarts of a run whose worker died (it resumes from its checkpoint).")] = 2,
    checkpoint_seconds: Annotated[float, typer.Option(help="Least seconds between checkpoints (0 = every evaluation).")] = 30.0,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Run a design of mixtures (Dirichlet around the token prior) at several budgets."""
    from engine.services.training import sweep, sweep_specs
    from engine.counts import parse_counts
    from engine.train.loop import TrainSpec

    def report(outcome, done, total):
        if not as_json:
            extra = outcome.error or ", ".join(f"{k}={v:.3f}" for k, v in (outcome.final_losses or {}).items())
            typer.echo(f"[{done}/{total}] {outcome.name}: {outcome.status} {extra}")

    def run():
        base = TrainSpec(project=project, data_dir=str(data), name="", tokens=batch_size * seq_len, model=model,
                         seq_len=seq_len, batch_size=batch_size, lr=lr, evals=evals, device=device,
                         checkpoint_seconds=checkpoint_seconds)
        specs = sweep_specs(base, n, parse_counts(budgets, flag="--budgets"), seed_or_default(seed), prefix=prefix)
        return sweep(specs, workers=workers, threads_per_worker=threads, url=db, on_result=report, executor=executor,
                     ray_address=ray_address, checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                     max_retries=max_retries)

    outcomes = guarded(run)
    if as_json:
        emit_json([{"run": o.name, "status": o.status, "error": o.error, "final_losses": o.final_losses}
                   for o in outcomes])
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        typer.echo(f"error: {len(failed)} of {len(outcomes)} runs failed (see `mixplan jobs`).", err=True)
        raise typer.Exit(1)


@app.command("demo-corpus")
def demo_corpus_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for code.jsonl, prose.jsonl, legal.jsonl.")],
    prepare_into: Annotated[Optional[Path], typer.Option(help="Also run prepare-data into this folder.")] = None,
    project: Annotated[Optional[str], typer.Option(help="With --prepare-into: record the domains here.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Build a 3-domain corpus from text every Python installation has (no download)."""
    from engine.services.training import prepare
    from engine.train.demo_corpus import DEMO_TAGS, build_demo_corpus

    corpus = guarded(lambda: build_demo_corpus(out))
    prepared = None
    if prepare_into is not None:
        sources = {name: [str(path)] for name, path in corpus.files.items()}
        prepared = guarded(lambda: prepare(prepare_into, sources, project=project, tags=DEMO_TAGS, url=db))
    if as_json:
        emit_json({"domains": {name: {"file": str(path), "documents": corpus.documents[name], "bytes": corpus.bytes[name]}
                               for name, path in corpus.files.items()},
                   "prepared": None if prepared is None else {"root": str(prepared.root), "status": prepared.status}})
        return
    for name, path in corpus.files.items():
        typer.echo(f"{name:<8} {corpus.documents[name]:>6} documents {corpus.bytes[name]:>12,} bytes  {path}")
    if prepared is not None:
        typer.echo(f"prepared into {prepared.root} ({prepared.status})")


@app.command("jobs")
def jobs_command(
    project: Annotated[Optional[str], typer.Option(help="Only this project's jobs.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Training jobs, newest first; jobs whose process died are marked failed first."""
    from dataclasses import asdict

    from engine.services.training import list_jobs

    jobs = guarded(lambda: list_jobs(project, url=db))
    if as_json:
        emit_json([asdict(j) for j in jobs])
        return
    for j in jobs:
        typer.echo(f"{j.id:>5} {j.kind:<6} {j.state:<8} {j.progress:>6.1%}  {j.project}/{j.run or '-'}"
                   + (f"  {j.error}" if j.error else ""))


@app.command("export-runs")
def export_runs_command(
    project: Annotated[str, typer.Option(help="Project whose complete runs are exported.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for runs.jsonl and domains.yaml.")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Export runs as JSONL (readable by `mixplan ingest`) plus the domains' unique tokens."""
    from engine.services.training import export_runs

    runs_path, domains_path = guarded(lambda: export_runs(project, out, url=db))
    if as_json:
        emit_json({"project": project, "runs": str(runs_path), "domains": str(domains_path)})
        return
    typer.echo(f"wrote {runs_path} and {domains_path}")
