"""Benchmark: mixing laws on the 512 RegMix runs (5-fold CV, 13 targets, 100 bootstrap refits),
the landed reference (commit 1aa244a) and this checkout side by side in one run.

    python bench/fit_regmix.py [--regmix DIR] [--bootstrap 100] [--laws linear,exponential,gp,lightgbm,stack]
                               [--ref-commit 1aa244a] [--no-ref]

Each code path runs in its own subprocess (``PYTHONPATH`` pointing at it; the reference is a
detached ``git worktree`` at /tmp/mixplan-ref that this script creates) and reports, per law:
the wall time of the whole fit of the mean objective (13 per-target laws: CV, full fit, refits),
held-out Spearman / MAE / top-1 regret on Pile-CC and on the mean of the 13 losses, and the
cross-fitted coverage of the 90 % interval (new code only). Then, for the default law (GP):
the coverage of its 90 % interval on unseen runs (fit on a random 2/3 of the runs, seed 0,
counted on the other 1/3) and the time to predict 10,000 random mixtures with intervals.
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
REF_DIR = Path("/tmp/mixplan-ref")
TARGET = "pile_cc"


def worker(args: argparse.Namespace) -> None:
    """Runs inside one code path (imports come from PYTHONPATH); prints one JSON document."""
    import numpy as np

    from engine.laws.bootstrap import interval
    from engine.laws.objective import parse_objective
    from engine.services.fits import fit_law, model_from_fit
    from engine.services.ingest import ingest_files
    from engine.store import session_scope
    from engine.store.dataset import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite"
        regmix = Path(args.regmix)
        ingest_files("regmix", [regmix / "train_mixture_1m.csv", regmix / "train_pile_loss_1m.csv"], url=url)
        with session_scope(url) as s:
            dataset = load_dataset(s, "regmix")
    spec = parse_objective("mean", dataset.targets, dataset.directions)
    from contextlib import nullcontext

    from engine.laws.registry import MIXTURE_LAWS

    try:  # as in fit_project: the stack reuses the GP's and LightGBM's fits (not in the reference)
        from engine.laws.memo import sharing_fits
    except ImportError:
        sharing_fits = nullcontext
    out: dict = {"laws": {}}
    with sharing_fits():
        for law in args.laws.split(","):
            if law not in MIXTURE_LAWS:  # a law the reference does not have
                continue
            started, cpu = time.perf_counter(), time.process_time()
            doc = fit_law(dataset, spec, law, folds=args.folds, bootstrap=args.bootstrap, seed=0)
            m = doc["cv_metrics"]
            out["laws"][law] = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                                "mean": {k: v for k, v in m.items() if k != "per_target"}, TARGET: m["per_target"][TARGET]}
    # the default law on unseen runs: fit on 2/3, count true values inside the 90 % interval on 1/3
    order = np.random.default_rng(0).permutation(dataset.n_runs)
    train, test = order[: 2 * len(order) // 3], order[2 * len(order) // 3:]
    from dataclasses import replace

    part = replace(dataset, run_names=[dataset.run_names[i] for i in train], mixtures=dataset.mixtures[train],
                   final=dataset.final[train], tokens=dataset.tokens[train], model_params=dataset.model_params[train])
    for objective in ("mean", TARGET):
        sub_spec = parse_objective(objective, dataset.targets, dataset.directions)
        doc = fit_law(part, sub_spec, "gp", folds=args.folds, bootstrap=args.bootstrap, seed=0)
        model = model_from_fit({**doc, "objective": sub_spec.key})
        lo, hi = interval(model.predict_targets_replicas(dataset.mixtures[test]) @ model.weights)
        cols = [dataset.targets.index(t) for t in sub_spec.targets]
        actual = dataset.final[test][:, cols] @ sub_spec.weights
        out[f"unseen_coverage_{objective}"] = float(((actual >= lo) & (actual <= hi)).mean())
        out[f"unseen_n_{objective}"] = int(len(test))
    model = model_from_fit({**fit_law(dataset, spec, "gp", folds=args.folds, bootstrap=args.bootstrap, seed=0),
                            "objective": spec.key})
    candidates = np.random.default_rng(1).dirichlet(np.full(len(dataset.domains), 0.3), 10_000)
    started, cpu = time.perf_counter(), time.process_time()
    if hasattr(model, "predict_with_replicas"):  # one pass for the points and the objective's refits
        per_target, replicas = model.predict_with_replicas(candidates)
        point = per_target @ model.weights
    else:  # the reference: what `mixplan predict` did there
        point = model.predict(candidates)
        replicas = model.predict_targets_replicas(candidates) @ model.weights
    lo, hi = interval(replicas)
    out["predict_10k"] = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                          "finite": bool(np.isfinite(point).all() and np.isfinite(lo).all())}
    print(json.dumps(out))


def run_path(path: Path, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": str(path)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--regmix", args.regmix, "--laws", args.laws,
           "--bootstrap", str(args.bootstrap), "--folds", str(args.folds)]
    done = subprocess.run(cmd, env=env, cwd=str(path), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the worker under {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_checkout(commit: str) -> Path:
    if not (REF_DIR / "engine").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(REF_DIR), commit], check=True,
                       capture_output=True)
    head = subprocess.run(["git", "-C", str(REF_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if not commit.startswith(head) and not head.startswith(commit):
        subprocess.run(["git", "-C", str(REF_DIR), "checkout", "--detach", commit], check=True, capture_output=True)
    return REF_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regmix", default=str(ROOT.parent / "shared" / "data" / "regmix"))
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--laws", default="linear,exponential,gp,lightgbm,stack")
    parser.add_argument("--ref-commit", default="1aa244a")
    parser.add_argument("--no-ref", action="store_true", help="skip the reference code path")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    load_before = os.getloadavg()
    paths = {"new": ROOT} if args.no_ref else {"ref": reference_checkout(args.ref_commit), "new": ROOT}
    results = {name: run_path(path, args) for name, path in paths.items()}
    print(f"# fit_regmix  {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}  "
          f"{platform.machine()}  cpus={os.cpu_count()}  python {platform.python_version()}  "
          f"load before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (1-min)")
    print(f"# 512 runs, 17 domains, 13 targets; {args.folds}-fold CV (seed 0); {args.bootstrap} bootstrap refits; "
          f"ref = commit {args.ref_commit}, new = this checkout; each in its own process")
    for objective in ("mean", TARGET):
        print(f"\n## objective: {objective} (law fitted for the mean objective; {TARGET}: its per-target law)")
        print(f"{'law':<12} {'code':<4} {'spearman':>9} {'mae':>8} {'top1 rank':>9} {'top1 gap':>9} {'cover90':>8} "
              f"{'fit s':>7} {'cpu s':>7}")
        for law in args.laws.split(","):
            for name, res in results.items():
                if law not in res["laws"]:
                    print(f"{law:<12} {name:<4} {'(no such law in this code path)':>40}")
                    continue
                row = res["laws"][law]
                m = row[objective]
                cover = row["mean"].get("coverage90") if objective == "mean" else None
                print(f"{law:<12} {name:<4} {m['spearman']:>9.4f} {m['mae']:>8.4f} {m['top1_rank']:>9d} "
                      f"{m['top1_gap']:>9.4f} {'-' if cover is None else f'{cover:.3f}':>8} {row['seconds']:>7.1f} "
                      f"{row['cpu']:>7.1f}")
    print("\n## all laws, whole fit of the mean objective (CV + full fit + refits + calibration; as fit_project)")
    for name, res in results.items():
        total = sum(r["seconds"] for r in res["laws"].values())
        print(f"{name:<4} {total:7.1f} s wall  {sum(r['cpu'] for r in res['laws'].values()):7.1f} s cpu")
    print("\n## default law (gp): 90 % interval on unseen runs (fit on a random 2/3, counted on the other 1/3)")
    for name, res in results.items():
        print(f"{name:<4} mean of 13: {res['unseen_coverage_mean']:.3f}   {TARGET}: {res['unseen_coverage_' + TARGET]:.3f}"
              f"   ({res['unseen_n_mean']} unseen runs)")
    print("\n## predict 10,000 random mixtures with 90 % intervals (default law gp, 13 targets, 100 refits)")
    for name, res in results.items():
        p = res["predict_10k"]
        print(f"{name:<4} {p['seconds']:6.2f} s wall  {p['cpu']:6.2f} s cpu  finite: {p['finite']}")


if __name__ == "__main__":
    main()
