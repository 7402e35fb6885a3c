"""Benchmark: plans on the 512 RegMix runs, judged by a model that never saw the planner's runs.

Run: ``python bench/plan_regmix.py [--splits 4] [--quick] [--reference 1aa244a] [--laws gp,exponential]
[--compare-starts 4]`` from the repository root.

Two parts, both stated in the output:

* speed and continuity beside the old planner: the default law (GP) is fitted once on all 512 runs
  (5-fold CV, 100 bootstrap refits) and the SAME fitted law is planned with by this checkout and by
  the reference commit, which the bench checks out itself (``git worktree add --detach
  /tmp/mixplan-ref-plan <ref>``) and runs in a subprocess with PYTHONPATH pointing there. Both plans
  are scored by the new code's model (same law, same budget): prediction and score (prediction + the
  refits' spread). The reference's sweep is capped (``--reference-sweep-points``) because it takes
  minutes; the output says so. Times are wall and CPU seconds with the machine load.
* plan quality against RegMix's recipe, judged by a model that never saw the planner's runs:

Setup (all stated in the output):
* runs: RegMix 1M-parameter proxies (Liu et al. 2024), 17 Pile training domains, 13 eval losses,
  trained on 1B tokens each (RegMix paper, Sec. 4); budget 25B tokens, 4-epoch cap.
* unique tokens per domain: The Pile paper (Gao et al. 2020, Table 1, "Raw Size" in GiB) x 2^30
  bytes/GiB x 0.25 tokens/byte (about 4 bytes per BPE token for English text; an approximation).
* objectives: Pile-CC validation loss, and the mean of all 13 losses.
* planner law: LightGBM on the objective itself with 8 bootstrap refits (RegMix's tree law), wrapped in the
  budget-aware model (Muennighoff prior, Chinchilla token prior: the runs have one budget).
* judge: for each split, the runs are halved; the planner sees one half, a LightGBM per target fitted
  on the OTHER half scores every option (a law scoring its own optimum flatters it). Lower is better.
* RegMix's recipe under the same judge: tree law on the same half, 100k Dirichlet samples around the
  natural (token) mixture, mean of the top 100 (Liu et al. 2024, Sec. 3.3).
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
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# the reference run imports the old engine: its checkout comes first on the path
sys.path.insert(0, os.environ.get("MIXPLAN_BENCH_ENGINE", str(ROOT)))

from engine.plan.budget_law import build_budget_model  # noqa: E402
from engine.plan.constraints import Constraints, resolve  # noqa: E402
from engine.plan.optimize import OptimizerSettings  # noqa: E402
from engine.plan.plan import PlanContext, make_plan  # noqa: E402
from engine.plan.sweep import budget_grid, sweep_budgets  # noqa: E402
from engine.store.dataset import Dataset  # noqa: E402

DATA = Path(os.environ.get("MIXPLAN_REGMIX_DATA", "/work/shared/data/regmix"))
REFERENCE = "1aa244a"  # landed main before issue 9
REFERENCE_TREE = Path("/tmp/mixplan-ref-plan")
BUDGET = 25e9
MAX_EPOCHS = 4.0
PROXY_TOKENS = 1e9
TOKENS_PER_BYTE = 0.25
# The Pile (Gao et al. 2020), Table 1, raw size in GiB
PILE_GIB = {
    "pile_cc": 227.12, "pubmed_central": 90.27, "arxiv": 56.21, "github": 95.16, "freelaw": 51.15,
    "stackexchange": 32.20, "uspto_backgrounds": 22.90, "pubmed_abstracts": 19.26, "gutenberg_pg_19": 10.88,
    "wikipedia_en": 6.38, "dm_mathematics": 7.75, "ubuntu_irc": 5.52, "europarl": 4.59, "hackernews": 3.90,
    "philpapers": 2.38, "nih_exporter": 1.89, "enron_emails": 0.88,
}
LGB_PARAMS = dict(objective="regression", learning_rate=0.05, num_leaves=15, min_data_in_leaf=5,
                  bagging_fraction=0.8, bagging_freq=1, feature_fraction=0.8, verbose=-1, num_threads=1)
LGB_ROUNDS = 150


def load() -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    mix = pd.read_csv(DATA / "train_mixture_1m.csv").set_index("index")
    loss = pd.read_csv(DATA / "train_pile_loss_1m.csv").set_index("index").loc[mix.index]
    domains = [c.removeprefix("train_the_pile_") for c in mix.columns]
    targets = [c.removeprefix("metric/the_pile_").removesuffix("_val_loss") for c in loss.columns]
    m = mix.to_numpy(float)
    return domains, targets, m / m.sum(axis=1, keepdims=True), loss.to_numpy(float)


@dataclass
class TreeObjective:
    """RegMix's tree law as an ObjectiveModel: LightGBM per target, bootstrap refits for intervals."""

    domains: list[str]
    targets: list[str]
    weights: np.ndarray
    models: list
    replicas: list[list]
    law: str = "lightgbm"
    smooth: bool = False

    @classmethod
    def fit(cls, x, y, domains, targets, weights, n_boot=8, seed=0, direct=False):
        """Per target; or, with ``direct``, one tree on the objective itself (13x cheaper to predict)."""
        rng = np.random.default_rng(seed)
        if direct:
            y, targets, weights = (y @ weights)[:, None], ["objective"], np.ones(1)
        used = [j for j, w in enumerate(weights) if w != 0]

        def fit_all(rows, s):
            return [lgb.train({**LGB_PARAMS, "seed": s}, lgb.Dataset(x[rows], y[rows, j]), LGB_ROUNDS)
                    for j in used]

        everything = np.arange(len(x))
        models = fit_all(everything, seed)
        replicas = [fit_all(rng.integers(0, len(x), len(x)), seed + 1 + b) for b in range(n_boot)]
        return cls(domains, [targets[j] for j in used], np.asarray(weights)[used], models, replicas)

    def predict_targets(self, mixtures, *, tokens=None):
        return np.column_stack([m.predict(mixtures) for m in self.models])

    def predict(self, mixtures, *, tokens=None):
        return self.predict_targets(mixtures) @ self.weights

    def predict_targets_replicas(self, mixtures, *, tokens=None):
        return np.stack([np.column_stack([m.predict(mixtures) for m in rep]) for rep in self.replicas])


def regmix_recipe(model: TreeObjective, prior: np.ndarray, rng, n=100_000, top=100) -> np.ndarray:
    """RegMix: Dirichlet samples around the token prior, mean of the top-100 by the tree law."""
    alpha = prior * rng.choice([0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0], size=(n, 1)) * len(prior)
    samples = rng.gamma(np.maximum(alpha, 1e-3))
    samples /= samples.sum(axis=1, keepdims=True)
    pred = model.predict(samples)
    return samples[np.argsort(pred)[:top]].mean(axis=0)


def regmix_dataset(x, y, domains, targets, run_ids, unique=None) -> Dataset:
    n = len(x)
    return Dataset("regmix", [str(i) for i in run_ids], domains, targets, ["lower"] * len(targets), x, y,
                   np.full(n, PROXY_TOKENS), np.full(n, 1e6),
                   np.full(len(domains), np.nan) if unique is None else unique)


def engine_law_doc(law, x, y, domains, targets, objective, run_ids, folds=3, bootstrap=20):
    """The project's own law as `mixplan fit` stores it (engine.services.fits.fit_law)."""
    from engine.laws.objective import parse_objective
    from engine.services.fits import fit_law

    ds = regmix_dataset(x, y, domains, targets, run_ids)
    spec = parse_objective(objective, targets, ds.directions)
    return {**fit_law(ds, spec, law, folds=folds, bootstrap=bootstrap, seed=0), "objective": spec.key}


def engine_law_model(law, x, y, domains, targets, objective, run_ids):
    from engine.services.fits import model_from_fit

    return model_from_fit(engine_law_doc(law, x, y, domains, targets, objective, run_ids))


def budget_model(base, x, y, domains, targets, unique):
    """The mixing law moved to budgets with the repetition and token laws fitted on the runs (one budget:
    the priors), as `mixplan plan` builds it."""
    return build_budget_model(regmix_dataset(x, y, domains, targets, range(len(x)), unique), base)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="fewer variants, for a smoke run")
    ap.add_argument("--laws", default="lightgbm,exponential",
                    help="engine.laws laws to plan with too (comma-separated; empty for none)")
    ap.add_argument("--compare-starts", type=int, default=0,
                    help="also plan with each engine law at this many gradient starts (the default's before/after)")
    ap.add_argument("--first-split", type=int, default=0,
                    help="seed offset of the splits: tune on one range, confirm on another")
    ap.add_argument("--law", default="gp", help="the law of the speed part (the default law)")
    ap.add_argument("--reference", default=REFERENCE, help="commit of the old planner ('' to skip it)")
    ap.add_argument("--reference-sweep-points", type=int, default=2,
                    help="the old sweep takes ~10 s a point on a quiet machine: how many of the 12 to run")
    ap.add_argument("--reference-timeout", type=float, default=1800.0)
    ap.add_argument("--skip-judge", action="store_true", help="only the speed and continuity part")
    ap.add_argument("--fit-doc", help="JSON of the speed part's fit: read if it exists, else written there")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--measure-out", help=argparse.SUPPRESS)
    ap.add_argument("--measure-sweep-points", type=int, default=12, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(args.measure, args.measure_sweep_points, args.measure_out)
        return
    print(f"# plan_regmix  {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}  "
          f"{platform.processor() or platform.machine()}  python {platform.python_version()}  {load_str()}")
    speed(args)
    if not args.skip_judge:
        judge(args)


def judge(args) -> None:
    domains, targets, x, y = load()
    n, k = x.shape
    unique = np.array([PILE_GIB[d] * 2**30 * TOKENS_PER_BYTE for d in domains])
    natural = unique / unique.sum()
    objectives = {"pile_cc": np.eye(len(targets))[targets.index("pile_cc")],
                  "mean": np.full(len(targets), 1.0 / len(targets))}
    constraints = Constraints(max_epochs=MAX_EPOCHS)
    variants = {"plan (default)": OptimizerSettings()}
    if not args.quick:
        variants.update({
            "plan, no trust/pessimism": OptimizerSettings(pessimism=0.0, trust_scale=np.inf),
            "plan, 30k samples": OptimizerSettings(n_samples=30000),
        })
    print(f"\n## quality: held-out judge, {load_str()}")
    print(f"runs {n}, domains {k}, targets {len(targets)}; budget {BUDGET:.3g} tokens, cap {MAX_EPOCHS:g} epochs; "
          f"unique tokens = Pile Table 1 GiB x 2^30 x {TOKENS_PER_BYTE} tokens/byte")
    rows = []
    timing = {}
    for split in range(args.first_split, args.first_split + args.splits):
        rng = np.random.default_rng(100 + split)
        perm = rng.permutation(n)
        plan_idx, judge_idx = perm[: n // 2], perm[n // 2:]
        judge = TreeObjective.fit(x[judge_idx], y[judge_idx], domains, targets, np.ones(len(targets)), n_boot=0,
                                  seed=1000 + split)
        judge_targets = lambda m: judge.predict_targets(np.atleast_2d(m))  # noqa: E731
        for obj_name, weights in objectives.items():
            base = TreeObjective.fit(x[plan_idx], y[plan_idx], domains, targets, weights, seed=split, direct=True)
            model = budget_model(base, x[plan_idx], y[plan_idx], domains, targets, unique)
            measured = y[plan_idx] @ weights
            ctx = PlanContext(x[plan_idx], measured, [str(i) for i in plan_idx], unique, [{}] * k, [None] * k,
                              "regmix", "")
            options = {}
            for name, settings in variants.items():
                t0 = time.perf_counter()
                plan = make_plan(model, ctx, BUDGET, constraints, settings=replace(settings, seed=split))
                timing.setdefault("one plan (s)", []).append(time.perf_counter() - t0)
                options[name] = plan.mixture_array()
                if name == "plan (default)":
                    for b in plan.baselines:
                        options[b.name] = np.array(list(b.mixture.values()))
                    if split == args.first_split:
                        first_plan = plan
            for law in [name for name in args.laws.split(",") if name]:
                t0 = time.perf_counter()
                engine_model = budget_model(engine_law_model(law, x[plan_idx], y[plan_idx], domains, targets,
                                                             obj_name, plan_idx), x[plan_idx], y[plan_idx],
                                            domains, targets, unique)
                timing.setdefault(f"fit {law} (s)", []).append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                plan = make_plan(engine_model, ctx, BUDGET, constraints, settings=OptimizerSettings(seed=split))
                timing.setdefault(f"plan with {law} (s)", []).append(time.perf_counter() - t0)
                options[f"plan, engine law {law}"] = plan.mixture_array()
                if args.compare_starts:
                    t0 = time.perf_counter()
                    plan = make_plan(engine_model, ctx, BUDGET, constraints,
                                     settings=OptimizerSettings(seed=split, n_starts=args.compare_starts))
                    timing.setdefault(f"plan with {law}, {args.compare_starts} starts (s)", []).append(time.perf_counter() - t0)
                    options[f"plan, engine law {law}, {args.compare_starts} starts"] = plan.mixture_array()
            raw = regmix_recipe(base, natural, np.random.default_rng(split))
            options["regmix recipe"] = raw
            bounds = resolve(constraints, domains, unique_tokens=unique, budget_tokens=BUDGET)
            options["regmix recipe, capped"] = bounds.project(raw)[0]
            for name, mixture in options.items():
                score = float(judge_targets(mixture)[0] @ weights)
                rows.append({"split": split, "objective": obj_name, "option": name, "judge": score,
                             "within caps": bool(bounds.contains(mixture)[0])})
            if split == args.first_split:
                _print_plan(first_plan, obj_name)
    df = pd.DataFrame(rows)
    table = df.pivot_table(index="option", columns="objective", values="judge", aggfunc="mean")
    wins = {}
    for obj in objectives:
        sub = df[df.objective == obj].pivot(index="split", columns="option", values="judge")
        wins[obj] = (sub["plan (default)"] <= sub["regmix recipe"]).mean()
    print("\njudge score (LightGBM on the held-out half; lower is better), mean over", args.splits, "splits")
    print(table.sort_values("mean").round(4).to_string())
    print("\nshare of splits where the default plan <= RegMix's recipe:",
          ", ".join(f"{o}: {w:.0%}" for o, w in wins.items()))
    for obj in objectives:
        sub = df[df.objective == obj].pivot(index="split", columns="option", values="judge")
        diff = sub["plan (default)"] - sub["regmix recipe"]
        print(f"default plan - RegMix recipe, {obj}: {diff.mean():+.4f} +- {diff.std(ddof=1) / np.sqrt(len(diff)):.4f}"
              " (mean +- standard error over splits; negative = plan better)")
    caps = df.groupby("option")["within caps"].mean()
    print("within the 4-epoch caps:", ", ".join(f"{o}: {v:.0%}" for o, v in caps.items()))

    print("timings per split (median):", ", ".join(f"{name} {np.median(v):.2f}" for name, v in timing.items()))


def load_str() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.1f}/{b:.1f}/{c:.1f} on {os.cpu_count()} cores"


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(doc_path: str, sweep_points: int, out_path: str) -> None:
    """Plan and sweep with the fitted law in ``doc_path`` through whichever engine is on the path; each
    result is written to ``out_path`` as it arrives, so a capped run still reports what it finished."""
    from engine.services.fits import model_from_fit

    domains, targets, x, y = load()
    n, k = x.shape
    unique = np.array([PILE_GIB[d] * 2**30 * TOKENS_PER_BYTE for d in domains])
    base = model_from_fit(json.loads(Path(doc_path).read_text()))
    w = np.asarray(base.weights)
    out = {}

    def save():
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(out_path).write_text(json.dumps(out))

    for label, uniq, cons in (("pile", unique, Constraints(max_epochs=MAX_EPOCHS)), ("flat", None, Constraints())):
        model = budget_model(base, x, y, domains, targets, uniq)
        ctx = PlanContext(x, y @ w, [str(i) for i in range(n)], unique if uniq is not None else np.full(k, np.nan),
                          [{}] * k, [None] * k, "regmix", "")
        if label == "pile":
            plan, wall, cpu = timed(lambda: make_plan(model, ctx, BUDGET, cons))
            out["plan"] = {"wall": wall, "cpu": cpu, "mixture": plan.mixture_array().tolist()}
            save()
            grid = budget_grid(1e8, 1e13, 12)[:sweep_points]
        else:  # all runs share one budget and nothing repeats: the law does not depend on the budget
            grid = budget_grid(1e8, 1e13, 8)[:sweep_points]
        sweep, wall, cpu = timed(lambda: sweep_budgets(model, ctx, grid, cons))
        out[f"sweep_{label}"] = {"wall": wall, "cpu": cpu, "points": len(grid), "shares": sweep.shares,
                                 "objective": sweep.objective["plan"]}
        save()


def reference_tree(ref: str) -> Path:
    if not (REFERENCE_TREE / "engine").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(REFERENCE_TREE), ref],
                       check=True, capture_output=True)
    return REFERENCE_TREE


def run_measure(engine: Path, doc_path: str, sweep_points: int, timeout: float) -> tuple[dict, bool]:
    """What the measuring subprocess finished, and whether it was cut off by ``timeout``."""
    env = {**os.environ, "MIXPLAN_BENCH_ENGINE": str(engine), "PYTHONPATH": str(engine)}
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        try:
            subprocess.run([sys.executable, __file__, "--measure", doc_path, "--measure-out", out.name,
                            "--measure-sweep-points", str(sweep_points)], env=env, check=True, timeout=timeout)
            capped = False
        except subprocess.TimeoutExpired:
            capped = True
        text = Path(out.name).read_text()
        return (json.loads(text) if text else {}), capped


def reference_layout(doc: dict) -> dict:
    """The same fit in the layout the reference reads: one params dict a target (the training inputs
    repeated), and each target's refits with the fit's inputs and hyperparameters beside them."""
    from engine.laws.registry import mixture_law

    law_cls = mixture_law(doc["params"]["law"])
    laws = law_cls.unpack_targets(doc["params"]["per_target"])
    per_target = [law.params for law in laws]
    boot = dict(doc["bootstrap"])
    if boot.get("kind") == "refits" and doc["params"]["law"] == "gp":
        boot["per_target"] = [{**packed, "shared": {k: v for k, v in params.items() if k != "alpha"}}
                              for packed, params in zip(boot["per_target"], per_target)]
    return {**doc, "params": {**doc["params"], "per_target": per_target}, "bootstrap": boot}


def speed(args) -> None:
    """The default law fitted once; planned with by this checkout and by the reference, side by side."""
    from engine.services.fits import model_from_fit

    domains, targets, x, y = load()
    n, k = x.shape
    unique = np.array([PILE_GIB[d] * 2**30 * TOKENS_PER_BYTE for d in domains])
    print(f"\n## speed and continuity: law {args.law}, mean of {len(targets)} targets, fitted once on all {n} runs "
          f"(5-fold CV, 100 bootstrap refits); {load_str()}")
    if args.fit_doc and Path(args.fit_doc).exists():
        doc = json.loads(Path(args.fit_doc).read_text())
        print(f"fit: read from {args.fit_doc}")
    else:
        doc, fit_wall, _ = timed(lambda: engine_law_doc(args.law, x, y, domains, targets, "mean", np.arange(n),
                                                         folds=5, bootstrap=100))
        print(f"fit (this checkout, for both): {fit_wall:.1f} s")
        if args.fit_doc:
            Path(args.fit_doc).write_text(json.dumps(doc))
    with tempfile.TemporaryDirectory() as tmp:
        doc_path = str(Path(tmp) / "fit.json")
        Path(doc_path).write_text(json.dumps(doc))
        new, _ = run_measure(ROOT, doc_path, 12, timeout=3600)
        old, capped = None, False
        if args.reference:
            ref_path = str(Path(tmp) / "fit_reference.json")
            Path(ref_path).write_text(json.dumps(reference_layout(doc)))
            old, capped = run_measure(reference_tree(args.reference), ref_path, args.reference_sweep_points,
                                      timeout=args.reference_timeout)
    model = budget_model(model_from_fit(doc), x, y, domains, targets, unique)

    def score(mixture):
        m = np.asarray(mixture)[None, :]
        pred = float(model.predict(m, BUDGET)[0])
        return pred, pred + float(model.predict_replicas(m, BUDGET).std(axis=0)[0])

    ref = f"reference {args.reference}" if args.reference else "reference (not run)"
    print(f"{'':44}{'this checkout':>22}{ref:>30}")

    def row(label, fmt, key):
        b = (old or {}).get(key)
        print(f"{label:<44}{fmt(new[key]):>22}{(fmt(b) if b is not None else 'not run'):>30}")

    secs = lambda d: f"{d['wall']:.2f} wall / {d['cpu']:.2f} cpu"  # noqa: E731
    row("one plan with intervals, 25B, 4-epoch cap (s)", secs, "plan")
    row("predicted objective of the plan (new model)", lambda d: f"{score(d['mixture'])[0]:.4f}", "plan")
    row("score = prediction + refit spread", lambda d: f"{score(d['mixture'])[1]:.4f}", "plan")
    from engine.plan.trust import TrustRegion

    trust = TrustRegion.auto(x, OptimizerSettings().trust_quantile, OptimizerSettings().trust_scale)
    row(f"distance to the runs (this checkout's trust radius {trust.radius:.3f})",
        lambda d: f"{trust.distance(np.asarray(d['mixture'])[None])[0]:.3f}", "plan")
    sweep_label = lambda d: f"{d['wall']:.2f} / {d['cpu']:.2f} cpu, {d['points']} pts"  # noqa: E731
    row("budget sweep 1e8..1e13, 12 points (s)", sweep_label, "sweep_pile")
    if args.reference:
        print(f"  (reference capped: sweeps on their first {args.reference_sweep_points} points only, "
              f"{args.reference_timeout:.0f} s in all{'; it ran out of time' if capped else ''})")
    for name, d in (("this checkout", new), (ref, old)):
        if not d or "sweep_flat" not in d:
            continue
        shares = np.array(d["sweep_flat"]["shares"], dtype=float)
        step = 0.5 * np.abs(np.diff(shares, axis=0)).sum(axis=1) if len(shares) > 1 else np.zeros(0)
        print(f"no budget dependence (unique tokens unknown, no cap), {name}: {len(shares)} points, "
              f"largest TV move between neighbours {step.max() if len(step) else 0:.4f}, objective "
              + ", ".join(f"{v:.4f}" for v in d["sweep_flat"]["objective"]))
    print(f"peak RSS of the measuring process: this checkout {new['peak_rss_mib']:.0f} MiB"
          + (f", reference {old['peak_rss_mib']:.0f} MiB" if old else ""))


def _print_plan(plan, objective):
    print(f"\nsplit 0, objective {objective}: plan from {plan.chosen_from}; distance to nearest run "
          f"{plan.trust['distance_to_nearest_run']:.3f} (trust radius {plan.trust['radius']:.3f}); "
          f"spread of the optimum (mean TV across refits) {plan.optimum_spread_tv:.3f}")
    print(f"{'option':<22}{'predicted':>10}{'90% interval':>22}")
    for o in [plan.recommended, *plan.baselines]:
        lo, hi = o.objective_interval
        print(f"{o.name:<22}{o.objective:>10.4f}{f'[{lo:.4f}, {hi:.4f}]':>22}")
    top = sorted(plan.recommended.mixture.items(), key=lambda kv: -kv[1])[:6]
    print("plan shares (top 6):", ", ".join(f"{d} {s:.3f}" for d, s in top))
    for note in plan.notes:
        print("note:", note)


if __name__ == "__main__":
    main()
