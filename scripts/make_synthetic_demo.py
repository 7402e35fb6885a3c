"""Write the synthetic demo logs under examples/synthetic/ (deterministic, seed 0).

The logs are drawn from a stated law, so a fit on them has a known answer:

    y_i(p, D) = c_i + k_i * exp(sum_j t_ij * p'_j) * (D' / D0) ** (-beta_i) + noise

the budget-aware mixing law of DESIGN.md section 4 (Ye et al. 2024's exponential
mixing law times a token power law), where D' = sum_j D'_j are the effective
tokens under repetition (Muennighoff et al. 2023, eq. 5):

    R_j  = max(0, p_j * D / U_j - 1)               repeated epochs of domain j
    D'_j = min(p_j * D, U_j) + U_j * R* * (1 - exp(-R_j / R*))
    p'_j = D'_j / D'

Five domains, three evaluation targets, 40 runs at three budgets (so that the
small domains repeat at the largest one), 4 checkpoints per run.

    python scripts/make_synthetic_demo.py [--out examples/synthetic]
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOMAINS = ["web", "code", "books", "wiki", "arxiv"]
UNIQUE_TOKENS = np.array([2e9, 3e8, 2e8, 8e7, 1.5e8])
LICENSES = ["odc-by", "permissive", "public-domain", "cc-by-sa", "arxiv-nonexclusive"]
TARGETS = ["val_web", "val_code", "val_wiki"]
OFFSET = np.array([2.2, 1.1, 2.0])  # c_i: irreducible loss
SCALE = np.array([1.6, 1.8, 1.5])  # k_i
# t_ij: how much domain j lowers target i (negative = helps).
EXPONENTS = np.array([
    [-1.0, -0.1, -0.5, -0.6, -0.3],
    [-0.2, -1.5, -0.1, -0.2, -0.4],
    [-0.6, -0.1, -0.5, -1.2, -0.3],
])
BETA = np.array([0.30, 0.28, 0.32])  # token power-law exponent per target
REFERENCE_TOKENS = 1e8  # D0
REPETITION_HALF_LIFE = 15.0  # R*, Muennighoff et al.'s fit for fully repeated data
NOISE = 0.005  # standard deviation of the additive measurement noise
BUDGETS = [(1e8, 16), (3e8, 14), (1e9, 10)]  # (tokens per run, number of runs)
CHECKPOINTS = (0.25, 0.5, 0.75, 1.0)  # fractions of a run's tokens where it is evaluated
MODEL_PARAMS = 20_000_000
SEQ_LEN = 512


@dataclass(frozen=True)
class SyntheticRun:
    name: str
    mixture: dict[str, float]
    tokens: int
    seed: int
    curve: list[tuple[int, dict[str, float]]]  # (tokens seen, {target: value})


def effective_tokens(mixture: np.ndarray, tokens: float) -> np.ndarray:
    """D'_j: fresh-token equivalents of each domain read ``mixture * tokens`` times (Muennighoff eq. 5)."""
    read = mixture * tokens
    repeats = np.maximum(0.0, read / UNIQUE_TOKENS - 1.0)
    decayed = UNIQUE_TOKENS * REPETITION_HALF_LIFE * (1.0 - np.exp(-repeats / REPETITION_HALF_LIFE))
    return np.minimum(read, UNIQUE_TOKENS) + decayed


def true_loss(mixture: np.ndarray, tokens: float) -> np.ndarray:
    """The law above without noise: one value per target."""
    effective = effective_tokens(mixture, tokens)
    total = effective.sum()
    shares = effective / total
    return OFFSET + SCALE * np.exp(EXPONENTS @ shares) * (total / REFERENCE_TOKENS) ** (-BETA)


def make_runs(seed: int = 0) -> list[SyntheticRun]:
    rng = np.random.default_rng(seed)
    runs: list[SyntheticRun] = []
    for tokens, count in BUDGETS:
        for _ in range(count):
            mixture = np.round(rng.dirichlet(np.ones(len(DOMAINS))), 4)
            largest = int(np.argmax(mixture))
            mixture[largest] = round(1.0 - np.delete(mixture, largest).sum(), 4)  # rounded shares sum to 1
            curve = []
            for fraction in CHECKPOINTS:
                seen = int(tokens * fraction)
                values = true_loss(mixture, seen) + rng.normal(0.0, NOISE, len(TARGETS))
                curve.append((seen, {t: round(float(v), 5) for t, v in zip(TARGETS, values)}))
            index = len(runs)
            runs.append(SyntheticRun(
                name=f"syn-{index:03d}",
                mixture={d: float(s) for d, s in zip(DOMAINS, mixture)},
                tokens=int(tokens),
                seed=index,
                curve=curve,
            ))
    return runs


def write_runs(runs: list[SyntheticRun], path: Path) -> None:
    """One JSON object per run: mixture, provenance and its measurements."""
    with path.open("w", encoding="utf-8") as handle:
        for run in runs:
            record = {
                "run_id": run.name,
                "mixture": run.mixture,
                "tokens": run.tokens,
                "model_params": MODEL_PARAMS,
                "seed": run.seed,
                "seq_len": SEQ_LEN,
                "tokenizer": "synthetic",
                "framework": "scripts/make_synthetic_demo.py",
                "measurements": [
                    {"tokens": seen, "target": target, "value": value}
                    for seen, values in run.curve
                    for target, value in values.items()
                ],
            }
            handle.write(json.dumps(record, sort_keys=False) + "\n")


def write_domains(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["domain", "unique_tokens", "license"])
        for name, unique, license_ in zip(DOMAINS, UNIQUE_TOKENS, LICENSES):
            writer.writerow([name, int(unique), license_])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "examples" / "synthetic")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = make_runs(args.seed)
    write_runs(runs, args.out / "runs.jsonl")
    write_domains(args.out / "domains.csv")
    print(f"wrote {len(runs)} runs to {args.out / 'runs.jsonl'} and {len(DOMAINS)} domains to {args.out / 'domains.csv'}")


if __name__ == "__main__":
    main()
