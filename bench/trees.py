"""Benchmark: the LightGBM law with main's settings (RegMix's: 1,000 rounds at learning rate 0.01,
31 leaves) against this checkout's (learning rate 0.1, 7 leaves, rounds chosen by a CV pilot), in
one run, and the CV-weighted stack of the GP and LightGBM beside the single laws.

    python bench/trees.py [--regmix DIR] [--no-big | --only-big] [--main-everywhere]

Per dataset, LightGBM's share of a fit (the pilot, 5-fold CV and the fit on all runs: every booster
the fit trains; seed 0) with wall and CPU seconds, and held-out Spearman / MAE on the mean of the
targets and on one target (Pile-CC for RegMix, t000 for synthetic swarms). Datasets: the 512 RegMix
runs (17 domains, 13 losses), synthetic swarms (engine/plan/synthetic.py) of 100 x 24 x 30,
512 x 64 x 110 and 2,048 x 64 x 110 (main's settings only with --main-everywhere on the 110-target
swarms: 660 boosters of 1,000 rounds, several CPU-minutes).
Then the whole fit (``fit_law``: CV, full fit, intervals) of the GP, LightGBM and the stack on
RegMix and on the 100-run, 24-domain swarm: Spearman, MAE, cross-fitted 90 % coverage, seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.laws.cv import cross_validated_predictions, fold_ids, metrics
from engine.laws.objective import parse_objective
from engine.laws.trees import LightGBMLaw
from engine.plan.synthetic import synthetic_swarm
from engine.services.fits import fit_law
from engine.store.dataset import Dataset

MAIN_SETTINGS = {"rounds": 1000, "learning_rate": 0.01, "num_leaves": 31}  # main's trees.py (RegMix's)


def regmix(directory: Path) -> tuple[Dataset, str]:
    from engine.services.ingest import ingest_files
    from engine.store import session_scope
    from engine.store.dataset import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite"
        ingest_files("regmix", [directory / "train_mixture_1m.csv", directory / "train_pile_loss_1m.csv"], url=url)
        with session_scope(url) as s:
            dataset = load_dataset(s, "regmix")
    return dataset, next(t for t in dataset.targets if "pile_cc" in t)


def synthetic(runs: int, domains: int, targets: int, seed: int = 0) -> tuple[Dataset, str]:
    swarm = synthetic_swarm(runs, domains, targets, seed=seed)
    n = runs
    dataset = Dataset(f"swarm{runs}x{domains}x{targets}", [f"r{i}" for i in range(n)], swarm.domains, swarm.targets,
                      ["lower"] * targets, swarm.mixtures, swarm.values, np.full(n, 1e9), np.full(n, np.nan),
                      np.full(domains, np.nan))
    return dataset, swarm.targets[0]


def lightgbm_share(dataset: Dataset, target: str, options: dict) -> str:
    """What a fit spends on LightGBM (pilot, CV, full fit) and its held-out figures."""
    started, cpu = time.perf_counter(), time.process_time()
    ids = fold_ids(dataset.n_runs, 5, 0)
    chosen = LightGBMLaw.choose_options(dataset.mixtures, dataset.final, ids, options)
    held_out, _ = cross_validated_predictions(LightGBMLaw, chosen, dataset.mixtures, dataset.final, ids)
    LightGBMLaw.fit_batch(dataset.mixtures, dataset.final, np.ones((1, dataset.n_runs)), options=chosen)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    mean = metrics(dataset.final.mean(1), held_out.mean(1))
    one = metrics(dataset.final[:, dataset.targets.index(target)], held_out[:, dataset.targets.index(target)])
    return (f"rounds {chosen['rounds']:4d}  wall {wall:6.1f} s  cpu {cpu:6.1f} s  | mean: Spearman {mean.spearman:.4f} "
            f"MAE {mean.mae:.4f} | {target[-20:]}: Spearman {one.spearman:.4f} MAE {one.mae:.4f}")


def whole_fits(dataset: Dataset, target: str) -> None:
    spec = parse_objective("mean", dataset.targets, dataset.directions)
    for law in ("gp", "lightgbm", "stack"):
        doc = fit_law(dataset, spec, law, folds=5, bootstrap=100, seed=0)
        m = doc["cv_metrics"]
        one = m["per_target"][target]
        print(f"  {law:9s} mean: Spearman {m['spearman']:.4f} MAE {m['mae']:.4f} coverage90 {m['coverage90']:.3f} | "
              f"{target[-20:]}: Spearman {one['spearman']:.4f} MAE {one['mae']:.4f} | {doc['seconds']:6.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regmix", default="/work/shared/data/regmix", type=Path)
    parser.add_argument("--no-big", action="store_true", help="skip the 512 x 64 x 110 and 2,048 x 64 x 110 swarms")
    parser.add_argument("--only-big", action="store_true", help="only the 110-target swarms, LightGBM's share")
    parser.add_argument("--main-everywhere", action="store_true", help="main's settings on the 110-target swarms too")
    args = parser.parse_args()
    load_before = os.getloadavg()
    print(f"# trees  {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}  {platform.machine()}  "
          f"cpus={os.cpu_count()}  python {platform.python_version()}  load before {load_before[0]:.1f} (1-min)")
    sets = [] if args.only_big else [("RegMix 512 x 17 x 13", *regmix(args.regmix)),
                                     ("synthetic 100 x 24 x 30", *synthetic(100, 24, 30, seed=1))]
    if not args.no_big:
        sets += [("synthetic 512 x 64 x 110", *synthetic(512, 64, 110)), ("synthetic 2048 x 64 x 110", *synthetic(2048, 64, 110))]
    print("\n## LightGBM's share of a fit (pilot + 5-fold CV + full fit), main's settings vs this checkout")
    for label, dataset, target in sets:
        print(f"{label}", flush=True)
        if len(dataset.targets) <= 30 or args.main_everywhere:
            print(f"  main  {lightgbm_share(dataset, target, MAIN_SETTINGS)}", flush=True)
        print(f"  new   {lightgbm_share(dataset, target, {})}", flush=True)
    if not args.only_big:
        print("\n## Whole fits (fit_law: CV, full fit, intervals): GP, LightGBM and the stack")
    for label, dataset, target in ([] if args.only_big else sets[:2]):
        print(label, flush=True)
        whole_fits(dataset, target)
    print(f"# load after {os.getloadavg()[0]:.1f} (1-min)")


if __name__ == "__main__":
    main()
