"""Benchmark: plans on the 512 RegMix runs, judged by a model that never saw the planner's runs.

Run: ``python bench/plan_regmix.py [--splits 4] [--quick]`` from the repository root.

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
import platform
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.plan.budget_law import BudgetAwareModel  # noqa: E402
from engine.plan.constraints import Constraints  # noqa: E402
from engine.plan.optimize import OptimizerSettings  # noqa: E402
from engine.plan.plan import PlanContext, make_plan  # noqa: E402
from engine.plan.repetition import RepetitionLaw  # noqa: E402
from engine.plan.sweep import budget_grid, sweep_budgets  # noqa: E402
from engine.plan.token_law import fit_token_law  # noqa: E402
from engine.plan.constraints import resolve  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "regmix"
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


def engine_law_model(law, x, y, domains, targets, objective, run_ids):
    """The project's own law as `mixplan plan` would load it: engine.laws via the fit service's fit_law."""
    from engine.laws.objective import parse_objective
    from engine.services.fits import fit_law, model_from_fit
    from engine.store.dataset import Dataset

    n = len(x)
    ds = Dataset("regmix", [str(i) for i in run_ids], domains, targets, ["lower"] * len(targets), x, y,
                 np.full(n, PROXY_TOKENS), np.full(n, 1e6), np.full(len(domains), np.nan))
    spec = parse_objective(objective, targets, ds.directions)
    doc = fit_law(ds, spec, law, folds=3, bootstrap=20, seed=0)
    return model_from_fit({**doc, "objective": spec.key})


def budget_model(base, unique, tokens_of_runs, k):
    token_law = fit_token_law(directions=["lower"] * len(base.targets), mixtures=np.zeros((len(tokens_of_runs), k)),
                              final=np.full((len(tokens_of_runs), len(base.targets)), np.nan), tokens=tokens_of_runs,
                              model_params=np.full(len(tokens_of_runs), 1e6), curve_run=np.zeros(0, int),
                              curve_target=np.zeros(0, int), curve_tokens=np.zeros(0), curve_value=np.zeros(0))
    return BudgetAwareModel(base, unique, RepetitionLaw(), token_law)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="fewer variants, for a smoke run")
    ap.add_argument("--laws", default="lightgbm,exponential",
                    help="engine.laws laws to plan with too (comma-separated; empty for none)")
    ap.add_argument("--first-split", type=int, default=0,
                    help="seed offset of the splits: tune on one range, confirm on another")
    args = ap.parse_args()
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
    print(f"# plan_regmix  {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.node()}  "
          f"{platform.processor() or platform.machine()}  python {platform.python_version()}")
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
            model = budget_model(base, unique, np.full(len(plan_idx), PROXY_TOKENS), k)
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
                                                             obj_name, plan_idx), unique,
                                            np.full(len(plan_idx), PROXY_TOKENS), k)
                timing.setdefault(f"fit {law} (s)", []).append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                plan = make_plan(engine_model, ctx, BUDGET, constraints, settings=OptimizerSettings(seed=split))
                timing.setdefault(f"plan with {law} (s)", []).append(time.perf_counter() - t0)
                options[f"plan, engine law {law}"] = plan.mixture_array()
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

    # timings on the full 512 runs: one plan with intervals, and a 12-point budget sweep
    weights = objectives["mean"]
    base = TreeObjective.fit(x, y, domains, targets, weights, seed=0, direct=True)
    model = budget_model(base, unique, np.full(n, PROXY_TOKENS), k)
    ctx = PlanContext(x, y @ weights, [str(i) for i in range(n)], unique, [{}] * k, [None] * k, "regmix", "")
    t0 = time.perf_counter()
    make_plan(model, ctx, BUDGET, constraints)
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    sweep = sweep_budgets(model, ctx, budget_grid(1e8, 1e13, 12), constraints)
    sweep_s = time.perf_counter() - t0
    print(f"\nwall time, 512 runs, mean objective, tree on the objective: one plan with intervals {one:.2f} s "
          f"(target < 2 s); 12-point budget sweep {sweep_s:.2f} s (target < 10 s)")
    for law in [name for name in args.laws.split(",") if name]:
        engine_model = budget_model(engine_law_model(law, x, y, domains, targets, "mean", np.arange(n)), unique,
                                    np.full(n, PROXY_TOKENS), k)
        t0 = time.perf_counter()
        make_plan(engine_model, ctx, BUDGET, constraints)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        sweep_budgets(engine_model, ctx, budget_grid(1e8, 1e13, 12), constraints)
        print(f"wall time, 512 runs, mean objective, engine law {law} (13 per-target laws): one plan with "
              f"intervals {one:.2f} s; 12-point sweep {time.perf_counter() - t0:.2f} s")
    print("cap reached (4 epochs):", ", ".join(f"{d} at {b:.2g}" for d, b in sweep.cap_budget.items() if b) or "none")


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
