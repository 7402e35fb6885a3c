"""Throughput of mixplan's training loop against a bare loop fed from the same batches.

    python bench/train_throughput.py              # CPU: tiny model, 262k tokens a run, 2 repeats
    python bench/train_throughput.py --quick      # fewer tokens, for a smoke run

Three loops train the same model (same seed, size, optimiser, learning-rate schedule,
batch size, mixture) for the same number of steps on the demo corpus, each batch drawn by
the same ``MixtureSampler`` from the memory-mapped domains and moved by the same
``to_device``:

- bare: sampler -> forward -> backward -> clip -> AdamW step, nothing else (timed from
  the first step to the last);
- loop, evaluation off: ``engine.train.loop.train`` with ``evals=0`` (what ``mixplan train``
  runs: run and job rows in a SQLite store, heartbeats, the training-loss sum), timed end
  to end, setup included; checkpoints off in both loop rows (their cost is the disk's:
  one ``torch.save`` of model and optimiser at most every 30 s by default);
- loop, default evaluation: the same with the default 10 evaluations reading
  ``eval_share`` (10%) of the training tokens, forward only.

The loops alternate in order every repeat (the machine is shared); the best time of
each is kept. Targets: evaluation off >= 0.95x the bare loop; with the default share
the expected cost is the evaluated tokens at about a third of a training token each.
On CUDA (bf16 autocast) the table adds model FLOPs utilisation against the GPU's dense
bf16 peak; without a GPU the section says so and gives no figure.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.services.projects import create_project  # noqa: E402
from engine.train.data import prepare_data  # noqa: E402
from engine.train.demo_corpus import build_demo_corpus  # noqa: E402
from engine.train.loop import Trainer, TrainSpec, lr_at, peak_flops, to_device, train  # noqa: E402
from engine.train.model import next_token_loss  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bare_loop(spec: TrainSpec) -> float:
    """Seconds for the run's steps of a bare loop on the trainer's own model, optimiser and sampler."""
    trainer = Trainer(spec)  # builds the model, AdamW and the MixtureSampler exactly as train() does
    model, optimizer, device = trainer.model, trainer.optimizer, trainer.device
    model.train()
    synchronize()
    started = time.perf_counter()
    for step in range(trainer.total_steps):
        rows = to_device(trainer.sampler.batch(trainer.mixture), device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, trainer.total_steps, spec)
        with trainer.autocast():
            loss = next_token_loss(model(rows[:, :-1]), rows[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainer.raw_model.parameters(), spec.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize()
    return time.perf_counter() - started


def our_loop(spec: TrainSpec, url: str) -> float:
    synchronize()
    started = time.perf_counter()
    train(replace(spec, name=f"{spec.name}-{time.time_ns()}"), url=url)
    synchronize()
    return time.perf_counter() - started


def measure(data: str, url: str, model: str, tokens: int, repeats: int, device: str, compile_model: bool) -> dict:
    cuda = device == "cuda"
    base = TrainSpec(project="bench", data_dir=data, name=model, tokens=tokens, model=model, device=device,
                     compile=compile_model, mixture={"code": 0.5, "prose": 0.3, "legal": 0.2},
                     batch_size=32 if cuda else 8, seq_len=512 if cuda else 128, checkpoint_seconds=math.inf)
    loops = {
        "bare": lambda: bare_loop(base),
        "eval off": lambda: our_loop(replace(base, evals=0), url),
        "default eval": lambda: our_loop(base, url),
    }
    seconds: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(repeats):  # the order flips every repeat, so a load change favours no loop
        for name in (list(loops) if r % 2 == 0 else list(loops)[::-1]):
            seconds[name].append(loops[name]())
    trainer = Trainer(base)
    trained = trainer.total_steps * trainer.tokens_per_step
    evaluated = trainer.evaluator.tokens * base.evals
    return {"model": model, "params": trainer.raw_model.num_params(), "tokens": trained, "device": trainer.device,
            "flops_per_token": trainer.raw_model.flops_per_token(), "eval_tokens": evaluated,
            "eval_share": base.eval_share, "evals": base.evals,
            "tps": {name: trained / min(times) for name, times in seconds.items()},
            "spread": {name: max(times) / min(times) for name, times in seconds.items()}}


def report(row: dict, repeats: int) -> None:
    tps, peak = row["tps"], peak_flops(row["device"])
    print("| loop | tokens/s | / bare | slowest / fastest repeat |" + (" MFU |" if peak else ""))
    print("|---|---:|---:|---:|" + ("---:|" if peak else ""))
    for name, value in tps.items():
        mfu = f" {row['flops_per_token'] * value / peak:.1%} |" if peak else ""
        print(f"| {name} | {value:,.0f} | {value / tps['bare']:.2f}x | {row['spread'][name]:.2f} |{mfu}")
    off, default = tps["eval off"] / tps["bare"], tps["default eval"] / tps["bare"]
    share = row["eval_tokens"] / row["tokens"]
    expected = 1 / (1 + share / 3) * off  # a forward pass costs about a third of a training step per token
    print()
    print(f"{row['model']} ({row['params']:,} parameters), {row['tokens']:,} training tokens, best of {repeats}:")
    print(f"- evaluation off, the loop runs at {off:.2f}x the bare loop: "
          f"{'meets' if off >= 0.95 else 'misses'} the 0.95x target"
          f"{'' if off >= 0.95 else f' by {0.95 - off:.2f}'}.")
    print(f"- with the default evaluation ({row['evals']} evaluations, {row['eval_tokens']:,} held-out tokens = "
          f"{share:.1%} of the training tokens, share setting {row['eval_share']:.0%}) it runs at {default:.2f}x; "
          f"forward-only evaluation at a third of a training token's cost predicts {expected:.2f}x.")
    if peak is None:
        print("- MFU: " + ("not measured on CPU." if row["device"].type == "cpu" else "unknown GPU peak."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small budgets (smoke run).")
    parser.add_argument("--repeats", type=int, default=2, help="Timings per loop (best kept; order alternates).")
    parser.add_argument("--models", default="tiny", help="Comma-separated model sizes for the CPU rows.")
    parser.add_argument("--tokens", type=int, default=262_144, help="Training tokens of each CPU run.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for every loop.")
    parser.add_argument("--compile", action="store_true", help="torch.compile on the GPU rows.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="mixplan-bench-"))
    os.environ["MIXPLAN_HOME"] = str(work / "home")
    url = f"sqlite:///{work / 'bench.sqlite'}"
    corpus = build_demo_corpus(work / "corpus")
    data = str(prepare_data(work / "data", {n: [str(p)] for n, p in corpus.files.items()}).root)
    create_project("bench", url=url)

    print(f"# mixplan train throughput — {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"# machine: {machine()}; torch threads {args.threads}; load average {os.getloadavg()[0]:.2f} (shared)")
    print()
    tokens = 32_768 if args.quick else args.tokens
    for model in args.models.split(","):
        print(f"## CPU, {model} model, batch 8 x 128 tokens")
        report(measure(data, url, model, tokens, args.repeats, "cpu", False), args.repeats)
        print()
    print("## GPU (CUDA, bf16 autocast)")
    if not torch.cuda.is_available():
        print("No CUDA device in this run: no GPU figures (none measured, none estimated).")
    else:
        gpu_budgets = {"small": 262_144} if args.quick else {"small": 4_000_000, "gpt100m": 8_000_000}
        for model, gpu_tokens in gpu_budgets.items():
            print(f"### {model} model, batch 32 x 512 tokens")
            report(measure(data, url, model, gpu_tokens, args.repeats, "cuda", args.compile), args.repeats)
            print()
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
