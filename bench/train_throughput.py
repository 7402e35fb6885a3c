"""Throughput of mixplan's proxy trainer against a minimal reference loop; Aioli vs stratified.

    python bench/train_throughput.py            # CPU: tiny + small, Aioli vs stratified (3 seeds)
    python bench/train_throughput.py --quick    # fewer tokens, for a smoke run

Part 1 — tokens/s of ``engine.train.loop.train`` (what ``mixplan train`` runs: mixture
sampling from memory-mapped domains, per-domain evaluation every 10% of the run,
measurements and heartbeats written to a SQLite store, checkpoints) beside a minimal
reference loop in the same process: the same model, optimiser, batch and number of
steps, batches cut at random offsets of one in-memory tensor, no evaluation, no
logging. Target: ours >= 0.9x the reference. Each is timed ``--repeats`` times,
interleaved in alternating order, best kept (the machine is shared).

Part 2 — on CUDA only (bf16 autocast, optional torch.compile): tokens/s and model
FLOPs utilisation (6N + 12*L*d*T FLOPs per token over the GPU's dense bf16 peak)
for the small and the ~100M model. Without a GPU the section says so.

Part 3 — Aioli vs stratified (uniform) on the demo corpus: final mean validation
loss over the domains, 3 seeds each, same token budget and model. Reported as is.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.services.projects import create_project  # noqa: E402
from engine.train.aioli import AioliOptions  # noqa: E402
from engine.train.data import open_tokens, prepare_data, read_prepared  # noqa: E402
from engine.train.demo_corpus import build_demo_corpus  # noqa: E402
from engine.train.loop import TrainSpec, lr_at, train  # noqa: E402
from engine.train.model import GPT, config_for  # noqa: E402

# Dense bf16 peak FLOP/s (no sparsity) by device name fragment; --peak-tflops overrides.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "4090": 165.0}


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


def reference_loop(spec: TrainSpec, vocab_size: int, tokens: torch.Tensor, device: torch.device) -> float:
    """Seconds for the same number of steps of a plain random-batch loop (no mixture, eval or logging)."""
    torch.manual_seed(spec.seed)
    model = GPT(config_for(spec.model, vocab_size, spec.seq_len)).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    steps = math.ceil(spec.tokens / (spec.batch_size * spec.seq_len))
    generator = torch.Generator().manual_seed(spec.seed)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    synchronize()
    started = time.perf_counter()
    for step in range(steps):
        starts = torch.randint(0, len(tokens) - spec.seq_len - 1, (spec.batch_size,), generator=generator)
        rows = torch.stack([tokens[s:s + spec.seq_len + 1] for s in starts.tolist()]).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, spec)
        with autocast:
            loss = model.loss(rows[:, :-1], rows[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize()
    return time.perf_counter() - started


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def ours(spec: TrainSpec, url: str) -> tuple[float, int]:
    synchronize()
    started = time.perf_counter()
    result = train(spec, url=url)
    synchronize()
    return time.perf_counter() - started, result.tokens


def throughput_rows(data: str, url: str, sizes: dict[str, int], repeats: int, device: str,
                    compile_model: bool) -> list[dict]:
    prepared = read_prepared(data)
    all_tokens = torch.from_numpy(np.concatenate([np.asarray(open_tokens(prepared, d, "train"), dtype=np.int64)
                                                  for d in sorted(prepared.domains)]))
    rows = []
    for size, budget in sizes.items():
        base = TrainSpec(project="bench", data_dir=data, name="", tokens=budget, model=size, evals=10,
                         mixture={"code": 0.5, "prose": 0.3, "legal": 0.2}, device=device, compile=compile_model,
                         batch_size=8 if device == "cpu" else 32, seq_len=128 if device == "cpu" else 512)
        dev = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
        ours_s, final_only_s, ref_s, tokens = [], [], [], 0
        def time_reference() -> None:
            ref_s.append(reference_loop(base, prepared.vocab_size, all_tokens, dev))

        def time_ours() -> None:
            nonlocal tokens
            seconds, tokens = ours(replace(base, name=f"{size}-{device}-{time.time_ns()}"), url)
            ours_s.append(seconds)

        def time_final_only() -> None:
            final_only_s.append(ours(replace(base, name=f"{size}-{device}-final-{time.time_ns()}", evals=1), url)[0])

        for r in range(repeats):  # the order flips every repeat, so a load change favours no loop
            for timed in (time_reference, time_ours, time_final_only)[:: 1 if r % 2 == 0 else -1]:
                timed()
        model = GPT(config_for(size, prepared.vocab_size, base.seq_len))
        ours_tps, ref_tps = tokens / min(ours_s), tokens / min(ref_s)
        rows.append({"size": size, "params": model.num_params(), "tokens": tokens, "device": dev.type,
                     "ours_tps": ours_tps, "final_only_tps": tokens / min(final_only_s), "ref_tps": ref_tps,
                     "ratio": ours_tps / ref_tps, "final_only_ratio": tokens / min(final_only_s) / ref_tps,
                     "flops_per_token": model.flops_per_token()})
    return rows


def peak_flops(override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((t * 1e12 for key, t in PEAK_BF16_TFLOPS.items() if key in name), None)


def aioli_vs_stratified(data: str, url: str, model: str, tokens: int, seeds: list[int]) -> list[dict]:
    rows = []
    options = AioliOptions(rounds=4, lp_rounds=1, lp_steps=4, one_hot_factor=1.0, normalize_a=True, eta=1.0)
    for method in ("stratified", "aioli"):
        for seed in seeds:
            spec = TrainSpec(project="bench", data_dir=data, name=f"cmp-{method}-{seed}-{time.time_ns()}",
                             tokens=tokens, model=model, method=method, seed=seed, aioli=options)
            result = train(spec, url=url)
            rows.append({"method": method, "seed": seed, "mean_loss": float(np.mean(list(result.final_losses.values()))),
                         "losses": result.final_losses, "mixture": result.mixture})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small budgets (smoke run).")
    parser.add_argument("--repeats", type=int, default=2, help="Timings per loop (best kept; order alternates).")
    parser.add_argument("--tiny-tokens", type=int, default=524_288, help="Tokens of each tiny run.")
    parser.add_argument("--small-tokens", type=int, default=65_536, help="Tokens of each small run.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both loops.")
    parser.add_argument("--aioli-model", default="micro")
    parser.add_argument("--aioli-tokens", default=None, help="Token budget of each Aioli/stratified run.")
    parser.add_argument("--skip-aioli", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile on the GPU rows.")
    parser.add_argument("--peak-tflops", type=float, default=None, help="The GPU's dense bf16 peak, TFLOP/s.")
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
    print(f"# machine: {machine()}; torch threads {args.threads}; load average {os.getloadavg()[0]:.2f}")
    print()
    cpu_sizes = {"tiny": 32_768, "small": 8_192} if args.quick else {"tiny": args.tiny_tokens,
                                                                     "small": args.small_tokens}
    rows = throughput_rows(data, url, cpu_sizes, args.repeats, "cpu", False)
    print("## CPU: mixplan train loop (eval every 10%, store logging) vs minimal reference loop")
    print("Each evaluation runs 3 domains x 16 windows x 128 tokens forward, about 2 training steps of")
    print("8 x 128 tokens, so 10 evaluations cost about 20,480 / tokens of a run: 4% at 524k, 31% at 66k.")
    print("'final eval only' is the same loop with one evaluation at the end (the loop's own overhead).")
    print("| model | params | tokens | ours tok/s (eval every 10%) | ours tok/s (final eval only) "
          "| reference tok/s | ours / reference | final-eval-only / reference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['params']:,} | {r['tokens']:,} | {r['ours_tps']:,.0f} | {r['final_only_tps']:,.0f} "
              f"| {r['ref_tps']:,.0f} | {r['ratio']:.2f}x | {r['final_only_ratio']:.2f}x |")
    print()

    print("## GPU (CUDA, bf16 autocast): tokens/s and model FLOPs utilisation")
    if not torch.cuda.is_available():
        print("No CUDA device in this run: no GPU figures (none measured, none estimated).")
    else:
        gpu_sizes = {"small": 2_000_000, "gpt100m": 4_000_000} if not args.quick else {"small": 262_144}
        peak = peak_flops(args.peak_tflops)
        gpu_rows = throughput_rows(data, url, gpu_sizes, args.repeats, "cuda", args.compile)
        print("| model | params | tokens | ours tok/s | reference tok/s | ours / reference | MFU (ours) "
              "| MFU (reference) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in gpu_rows:
            def mfu(tps: float) -> str:
                return f"{r['flops_per_token'] * tps / peak:.1%}" if peak else "peak unknown (--peak-tflops)"
            print(f"| {r['size']} | {r['params']:,} | {r['tokens']:,} | {r['ours_tps']:,.0f} | {r['ref_tps']:,.0f} "
                  f"| {r['ratio']:.2f}x | {mfu(r['ours_tps'])} | {mfu(r['ref_tps'])} |")
    print()

    if not args.skip_aioli:
        tokens = int(float(args.aioli_tokens)) if args.aioli_tokens else (40_960 if args.quick else 204_800)
        cmp_rows = aioli_vs_stratified(data, url, args.aioli_model, tokens, [0, 1, 2])
        print(f"## Aioli vs stratified on the demo corpus ({args.aioli_model} model, {tokens:,} tokens, 3 seeds)")
        print("| method | seed | final mean val loss | final losses | mean mixture |")
        print("|---|---:|---:|---|---|")
        for r in cmp_rows:
            losses = ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["losses"].items()))
            mixture = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["mixture"].items()))
            print(f"| {r['method']} | {r['seed']} | {r['mean_loss']:.4f} | {losses} | {mixture} |")
        for method in ("stratified", "aioli"):
            values = [r["mean_loss"] for r in cmp_rows if r["method"] == method]
            print(f"{method}: mean {statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} (sd over seeds)")


if __name__ == "__main__":
    main()
