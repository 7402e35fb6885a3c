"""Benchmark: one plan on a synthetic swarm of real size (runs x 64 domains x 110 targets).

Run: ``python bench/plan_scale.py [--runs 512,2048] [--refits 8]`` from the repository root.

The swarm: Dirichlet mixtures (concentration 0.3), 110 targets ``2 + sum_j A_tj (p_j + 0.02)^-0.25 / k``
plus noise 0.01. The default law (GP) is fitted on all runs with ``--refits`` bootstrap refits (no CV:
the fit is not what is measured here; bench/fit_regmix.py times fits). The plan (mean of the 110
targets, 1T tokens, unique tokens 1e9..1e11 per domain, 4-epoch cap) runs in a child process that
only loads the stored fit, so its peak memory is the plan's. Targets: < 10 s, < 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.laws.bootstrap import bootstrap_counts  # noqa: E402
from engine.laws.gp import GPLaw  # noqa: E402
from engine.laws.objective import parse_objective  # noqa: E402

DOMAINS, TARGETS, BUDGET = 64, 110, 1e12


def swarm(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.full(DOMAINS, 0.3), n)
    scale = rng.uniform(0.05, 0.3, (TARGETS, DOMAINS))
    y = 2 + ((x + 0.02) ** -0.25) @ scale.T / DOMAINS + rng.normal(0, 0.01, (n, TARGETS))
    return x, y, np.geomspace(1e9, 1e11, DOMAINS)


def fit_doc(x, y, refits: int) -> dict:
    """What engine.services.fits.fit_law stores, without its cross-validation."""
    domains, targets = [f"d{j}" for j in range(DOMAINS)], [f"t{i}" for i in range(TARGETS)]
    spec = parse_objective("mean", targets, ["lower"] * TARGETS)
    full = GPLaw.fit_batch(x, y, np.ones((1, len(x))))[0]
    reps = GPLaw.fit_refits(x, y, bootstrap_counts(len(x), refits, 0), full)
    packed = [GPLaw.pack_replicas([row[i] for row in reps]) for i in range(TARGETS)]
    return {"params": {"law": "gp", "smooth": True, "targets": targets, "weights": spec.weights.tolist(),
                       "domains": domains, "per_target": [m.params for m in full]},
            "bootstrap": {"kind": "refits", "per_target": packed}, "objective": spec.key}


def plan_child(doc_path: str, n: int) -> dict:
    from engine.plan.budget_law import BudgetAwareModel
    from engine.plan.constraints import Constraints
    from engine.plan.plan import PlanContext, make_plan
    from engine.plan.repetition import RepetitionLaw
    from engine.plan.token_law import TokenLaw
    from engine.services.fits import model_from_fit

    x, y, unique = swarm(n)
    base = model_from_fit(json.loads(Path(doc_path).read_text()))
    model = BudgetAwareModel(base, unique, RepetitionLaw(), TokenLaw(np.full(TARGETS, 410.7), np.full(TARGETS, 0.28),
                                                                     "prior", proxy_tokens=1e9))
    k = DOMAINS
    ctx = PlanContext(x, y @ base.weights, [str(i) for i in range(n)], unique, [{}] * k, [None] * k, "synthetic", "")
    wall, cpu = time.perf_counter(), time.process_time()
    plan = make_plan(model, ctx, BUDGET, Constraints(max_epochs=4))
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "objective": plan.recommended.objective, "chosen_from": plan.chosen_from}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="512")
    ap.add_argument("--refits", type=int, default=8)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        Path(args.child[2]).write_text(json.dumps(plan_child(args.child[0], int(args.child[1]))))
        return
    a, b, c = os.getloadavg()
    print(f"# plan_scale  {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}  python "
          f"{platform.python_version()}  load {a:.1f}/{b:.1f}/{c:.1f} on {os.cpu_count()} cores")
    print(f"swarm: runs x {DOMAINS} domains x {TARGETS} targets; law gp with {args.refits} bootstrap refits; "
          f"plan: mean of {TARGETS} targets, {BUDGET:.0e} tokens, 4-epoch cap")
    for n in [int(v) for v in args.runs.split(",")]:
        x, y, _ = swarm(n)
        t0 = time.perf_counter()
        doc = fit_doc(x, y, args.refits)
        fit_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            doc_path, out = Path(tmp) / "fit.json", Path(tmp) / "out.json"
            doc_path.write_text(json.dumps(doc))
            subprocess.run([sys.executable, __file__, "--child", str(doc_path), str(n), str(out)], check=True)
            r = json.loads(out.read_text())
        a, _, _ = os.getloadavg()
        print(f"{n:>5} runs: plan {r['wall']:.2f} s wall / {r['cpu']:.2f} s cpu (target < 10 s), peak RSS "
              f"{r['peak_rss_mib']:.0f} MiB (target < 4096), objective {r['objective']:.4f} from {r['chosen_from']}; "
              f"(fit, not the target here: {fit_s:.0f} s); load {a:.1f}")


if __name__ == "__main__":
    main()
