"""Benchmark: how fit, predict and plan costs grow with runs, domains and targets (synthetic swarms).

    python bench/scale.py [--base 128,16,28] [--big | --only-big] [--laws linear,exponential,gp,lightgbm]
                          [--ref-commit 1aa244a] [--no-ref] [--timeout 900] [--ref-big-timeout 300]
                          [--big-runs 512,1024,2048]

Commands behind BENCHMARKS.md ("Laws (issue 9)"):

    python bench/scale.py --base 128,16,28 --timeout 600      # growth table, ref and new (~10 min quiet)
    python bench/scale.py --only-big --ref-big-timeout 300    # 512 / 1,024 / 2,048 x 64 x 110

Swarms come from :func:`engine.plan.synthetic.synthetic_swarm` (RegMix-style sparse mixtures,
power-law losses with correlated targets, noise 0.01), written as one CSV and imported. For the
base size and each axis doubled (then quadrupled) it measures, each configuration in a fresh
process: ``fit_project`` with the laws (5-fold CV, 100 refits, calibration, stored: what
``mixplan fit`` does), predicting 10,000 random mixtures with 90 % intervals through the stored
default law, one plan through the planner's service (``make_project_plan``, not stored), and the
process's peak RSS; then the ratio of each cost per doubling of runs, domains and targets.
``--big`` adds 512, 1,024 and 2,048 runs x 64 domains x 110 targets; there the reference (it
took 11 minutes to fit 512 x 64 x 110, issue 9) gets ``--ref-big-timeout`` seconds. The
reference (landed commit 1aa244a, a detached worktree at /tmp/mixplan-ref, see
bench/fit_regmix.py) runs the same steps in its own process, stopped after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def write_swarm(path: Path, runs: int, domains: int, targets: int) -> None:
    sys.path.insert(0, str(ROOT))
    from engine.plan.synthetic import synthetic_swarm

    swarm = synthetic_swarm(runs, domains, targets, seed=0)
    header = ["run_id", "tokens"] + [f"mix:{d}" for d in swarm.domains] + [f"loss:{t}" for t in swarm.targets]
    lines = [",".join(header)]
    for i in range(runs):
        shares = swarm.mixtures[i] / swarm.mixtures[i].sum()
        lines.append(",".join([f"r{i}", "1000000000"] + [f"{v:.8f}" for v in shares]
                              + [f"{v:.6f}" for v in swarm.values[i]]))
    path.write_text("\n".join(lines) + "\n")


def worker(csv_path: str, laws: list[str] | None) -> None:
    """Inside one code path: import, fit, predict, plan; one JSON line with seconds and peak RSS."""
    import resource

    import numpy as np

    from engine.laws.bootstrap import interval
    from engine.services.fits import fit_project, load_objective_model
    from engine.services.ingest import ingest_files
    from engine.services.plans import make_project_plan

    from engine.laws.registry import DEFAULT_LAWS, MIXTURE_LAWS

    laws = [law for law in laws if law in MIXTURE_LAWS] if laws else DEFAULT_LAWS  # the reference has no stack
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scale.sqlite"
        ingest_files("swarm", [csv_path], url=url)
        started, cpu = time.perf_counter(), time.process_time()
        report = fit_project("swarm", objective="mean", url=url, laws=laws)
        out["fit"] = [time.perf_counter() - started, time.process_time() - cpu]
        out["default"] = report.default_law
        out["laws"] = {r.law: [r.seconds, r.spearman, r.coverage if hasattr(r, "coverage") else None] for r in report.rows}
        model = load_objective_model("swarm", objective="mean", url=url)
        candidates = np.random.default_rng(1).dirichlet(np.full(len(model.domains), 0.3), 10_000)
        started, cpu = time.perf_counter(), time.process_time()
        if hasattr(model, "predict_with_replicas"):  # one pass for the points and the objective's refits
            interval(model.predict_with_replicas(candidates)[1])
        else:  # the reference: what `mixplan predict` did there
            model.predict(candidates)
            interval(model.predict_targets_replicas(candidates) @ model.weights)
        out["predict"] = [time.perf_counter() - started, time.process_time() - cpu]
        started, cpu = time.perf_counter(), time.process_time()
        make_project_plan("swarm", 1e9, store=False, url=url)
        out["plan"] = [time.perf_counter() - started, time.process_time() - cpu]
    out["rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))


def run(path: Path, csv_path: Path, timeout: float, laws: str) -> dict | str:
    env = {**os.environ, "PYTHONPATH": str(path)}
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(csv_path), "--laws", laws],
                              env=env,
                              cwd=str(path), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"not finished in {timeout:.0f} s"
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:120]
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="128,16,28", help="runs,domains,targets of the smallest swarm")
    parser.add_argument("--big", action="store_true", help="add 512x64x110 and 2048x64x110 (new code only)")
    parser.add_argument("--only-big", action="store_true", help="only the big swarms")
    parser.add_argument("--ref-commit", default="1aa244a")
    parser.add_argument("--no-ref", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration and code path")
    parser.add_argument("--ref-big-timeout", type=float, default=300.0,
                        help="seconds the reference gets on each big swarm (0: skip it there)")
    parser.add_argument("--big-runs", default="512,1024,2048", help="run counts of the big swarms (64 domains, 110 targets)")
    parser.add_argument("--laws", default="linear,exponential,gp,lightgbm,stack",
                        help="laws to fit (default: every default law; the reference skips those it lacks)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.laws.split(","))
        return
    from fit_regmix import reference_checkout

    n, k, t = (int(x) for x in args.base.split(","))
    configs = [] if args.only_big else [(n, k, t), (2 * n, k, t), (4 * n, k, t), (n, 2 * k, t), (n, 4 * k, t),
                                        (n, k, 2 * t), (n, k, 4 * t)]
    big = [(int(r), 64, 110) for r in args.big_runs.split(",")] if args.big or args.only_big else []
    paths = {"new": ROOT} if args.no_ref else {"ref": reference_checkout(args.ref_commit), "new": ROOT}
    print(f"# scale  {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}  {platform.machine()}  "
          f"cpus={os.cpu_count()}  python {platform.python_version()}  load {os.getloadavg()[0]:.1f} (1-min)")
    print(f"# fit: laws {args.laws}, mean objective, 5-fold CV + 100 refits (+ calibration in new); predict: 10,000 "
          "mixtures with intervals; plan: make_project_plan, 1e9 tokens; seconds wall (cpu); peak RSS of the process")
    print(f"{'runs':>5} {'dom':>4} {'tgt':>4} {'code':<4} {'fit s':>14} {'predict s':>12} {'plan s':>13} {'RSS GiB':>8}"
          f"  per-law fit s / default law  (load)")
    results: dict[tuple[str, tuple[int, int, int]], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in configs + big:
            csv_path = Path(tmp) / f"swarm_{'x'.join(map(str, size))}.csv"
            write_swarm(csv_path, *size)
            for name, path in paths.items():
                limit = args.ref_big_timeout if size in big and name == "ref" else args.timeout
                if limit <= 0:
                    continue
                res = run(path, csv_path, limit, args.laws)
                head = f"{size[0]:>5} {size[1]:>4} {size[2]:>4} {name:<4}"
                if isinstance(res, str):
                    print(f"{head} {res}", flush=True)
                    continue
                results[name, size] = res
                laws = " ".join(f"{law} {v[0]:.1f}" for law, v in res["laws"].items())
                cell = lambda v: f"{v[0]:.1f} ({v[1]:.1f})"  # noqa: E731
                print(f"{head} {cell(res['fit']):>14} {cell(res['predict']):>12} {cell(res['plan']):>13} "
                      f"{res['rss_gib']:>8.2f}  {laws} / {res['default']}  ({os.getloadavg()[0]:.1f})", flush=True)

    print_growth(results, paths, (n, k, t), big)


def print_growth(results: dict, paths: dict, base: tuple[int, int, int], big: list[tuple[int, int, int]]) -> None:
    """Cost ratio of each step that doubles one axis (CPU seconds: the load moves wall times)."""
    n, k, t = base
    chains = {"runs": [(n, k, t), (2 * n, k, t), (4 * n, k, t)], "domains": [(n, k, t), (n, 2 * k, t), (n, 4 * k, t)],
              "targets": [(n, k, t), (n, k, 2 * t), (n, k, 4 * t)]}
    if big:
        chains["runs (big)"] = big
    print("\n# growth per doubling: ratio of CPU seconds (fit, predict, plan) and of peak RSS, step by step")
    for name in paths:
        for axis, sizes in chains.items():
            steps = []
            for a, b in zip(sizes, sizes[1:]):
                ra, rb = results.get((name, a)), results.get((name, b))
                if ra is None or rb is None:
                    continue
                ratio = lambda key: rb[key][1] / max(ra[key][1], 1e-9)  # noqa: E731
                steps.append(f"{'x'.join(map(str, a))} -> {'x'.join(map(str, b))}: fit {ratio('fit'):.2f}x "
                             f"predict {ratio('predict'):.2f}x plan {ratio('plan'):.2f}x "
                             f"RSS {rb['rss_gib'] / ra['rss_gib']:.2f}x")
            if steps:
                print(f"{name:<4} {axis:<11} " + "; ".join(steps))


if __name__ == "__main__":
    main()
