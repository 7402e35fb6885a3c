"""Benchmark: mixing laws on the 512 RegMix runs (5-fold CV, 13 targets, 100 bootstrap refits).

    python bench/fit_regmix.py [--regmix DIR] [--bootstrap 100] [--laws linear,exponential,gp,lightgbm]

Prints, for the Pile-CC target and for the mean of the 13 targets (per-target fits
combined), each law's held-out Spearman, MAE and top-1 regret, the default law
mixplan picks, and the wall time of each law's whole fit (all 13 targets, CV and
refits). Reference in the same run: LightGBM with RegMix's own settings
(sail-sg/regmix regression_fitting/regression.ipynb), fitted by a plain loop
independent of engine.laws.
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

import lightgbm
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.laws.cv import fold_ids, metrics  # noqa: E402
from engine.laws.objective import parse_objective  # noqa: E402
from engine.laws.trees import REGMIX_PARAMS, REGMIX_ROUNDS  # noqa: E402
from engine.services.fits import LawRow, choose_default, fit_law  # noqa: E402
from engine.services.ingest import ingest_files  # noqa: E402
from engine.store import session_scope  # noqa: E402
from engine.store.dataset import load_dataset  # noqa: E402

TARGET = "pile_cc"


def reference(mixtures: np.ndarray, targets: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, float]:
    """Held-out predictions of RegMix's LightGBM (one model per target and fold) and the seconds it took."""
    started = time.perf_counter()
    out = np.full(targets.shape, np.nan)
    for fold in range(ids.max() + 1):
        train, test = ids != fold, ids == fold
        for i in range(targets.shape[1]):
            booster = lightgbm.train({**REGMIX_PARAMS, "num_threads": 1}, lightgbm.Dataset(mixtures[train], targets[train, i]),
                                     num_boost_round=REGMIX_ROUNDS)
            out[test, i] = booster.predict(mixtures[test])
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regmix", default=str(ROOT.parent / "shared" / "data" / "regmix"))
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--laws", default="linear,exponential,gp,lightgbm")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite"
        regmix = Path(args.regmix)
        ingest_files("regmix", [regmix / "train_mixture_1m.csv", regmix / "train_pile_loss_1m.csv"], url=url)
        with session_scope(url) as s:
            dataset = load_dataset(s, "regmix")

    mean_spec = parse_objective("mean", dataset.targets, dataset.directions)
    target_col = dataset.targets.index(TARGET)
    ids = fold_ids(dataset.n_runs, args.folds, 0)
    rows: dict[str, list[tuple[str, dict, float]]] = {TARGET: [], "mean": []}

    ref_pred, ref_seconds = reference(dataset.mixtures, dataset.final, ids)
    rows[TARGET].append(("regmix-lgbm (ref)", metrics(dataset.final[:, target_col], ref_pred[:, target_col]).as_dict(), ref_seconds))
    rows["mean"].append(("regmix-lgbm (ref)", metrics(dataset.final @ mean_spec.weights, ref_pred @ mean_spec.weights).as_dict(), ref_seconds))

    total = 0.0
    for law in args.laws.split(","):
        wall = time.perf_counter()
        doc = fit_law(dataset, mean_spec, law, folds=args.folds, bootstrap=args.bootstrap, seed=0)
        seconds = time.perf_counter() - wall
        total += seconds
        rows[TARGET].append((law, doc["cv_metrics"]["per_target"][TARGET], seconds))
        rows["mean"].append((law, {k: v for k, v in doc["cv_metrics"].items() if k != "per_target"}, seconds))

    print(f"# fit_regmix  {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}  "
          f"{platform.processor() or platform.machine()}  cpus={os.cpu_count()}  python {platform.python_version()}")
    print(f"# {dataset.n_runs} runs, {len(dataset.domains)} domains, {len(dataset.targets)} targets; "
          f"{args.folds}-fold CV (seed 0); {args.bootstrap} bootstrap refits per smooth law and target; "
          "lightgbm intervals from CV residuals")
    for objective, entries in rows.items():
        print(f"\n## objective: {objective}")
        print(f"{'law':<20} {'spearman':>9} {'pearson':>8} {'mae':>8} {'rmse':>8} {'top1 rank':>9} {'top1 gap':>9} {'fit s':>8}")
        law_rows = []
        for law, m, seconds in entries:
            print(f"{law:<20} {m['spearman']:>9.4f} {m['pearson']:>8.4f} {m['mae']:>8.4f} {m['rmse']:>8.4f} "
                  f"{m['top1_rank']:>9d} {m['top1_gap']:>9.4f} {seconds:>8.1f}")
            if not law.endswith("(ref)"):
                law_rows.append(LawRow(law, law != "lightgbm", m["spearman"], m["pearson"], m["mae"], m["rmse"],
                                       m["top1_rank"], m["top1_gap"], seconds, False))
        print(f"default law (best Spearman, MAE breaks ties within 0.002): {choose_default(law_rows)}")
    print(f"\nwall time of all laws on all {len(dataset.targets)} targets (CV + full fit + refits): {total:.1f} s")


if __name__ == "__main__":
    main()
