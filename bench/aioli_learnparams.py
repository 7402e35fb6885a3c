"""What Aioli's LearnParams measures on the demo corpus: the matrix A by round and by sweep position.

    python bench/aioli_learnparams.py [SEEDS]     # default 3 seeds

The setting of ``bench/aioli_vs_stratified.py`` (micro model, 204,800 tokens, 32 validation
windows a domain) with mixplan's default ``AioliOptions()``: 4 rounds, one sweep of 4-step
one-hot sub-runs per round. For every run it prints each round's sweep order (domain indices
in sorted order: code 0, legal 1, prose 2) and the column sums of that round's A (how much a
sub-run on that domain lowered the validation losses); then the mean column sum by the
sub-run's position in its sweep, and the share of A on its diagonal.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.train.aioli import AioliOptions  # noqa: E402
from engine.train.data import prepare_data  # noqa: E402
from engine.train.demo_corpus import build_demo_corpus  # noqa: E402
from engine.train.loop import Trainer, TrainSpec  # noqa: E402


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="mixplan-lp-"))
    corpus = build_demo_corpus(work / "c")
    data = str(prepare_data(work / "d", {n: [str(p)] for n, p in corpus.files.items()}, val_fraction=0.1).root)
    by_position: dict[int, list[float]] = {0: [], 1: [], 2: []}
    diagonal_share = []
    for seed in range(seeds):
        spec = TrainSpec(project="x", data_dir=data, name="w", tokens=204_800, model="micro", method="aioli",
                         seed=seed, eval_sequences=32, device="cpu", aioli=AioliOptions())
        trainer = Trainer(spec)
        policy = trainer.policy
        orders, last_round = [], -1
        while trainer.step < trainer.total_steps:
            trainer.train_step(trainer.mixture_for_step())
            if policy.round != last_round:  # a round has just begun: its sweep order is fixed now
                orders.append(list(policy.order))
                last_round = policy.round
        for order, a in zip(orders, policy.matrices):
            a = np.array(a)
            for position, domain in enumerate(order):
                by_position[position].append(a[:, domain].sum())
            diagonal_share.append(np.trace(a) / a.sum())
        print(seed, "orders", orders, "A colsums", [np.round(np.array(a).sum(0), 3).tolist() for a in policy.matrices],
              flush=True)
    for position, values in by_position.items():
        print(f"sweep position {position + 1}: mean column sum of A {np.mean(values):.4f} "
              f"(n={len(values)}, sd {np.std(values):.4f})")
    print(f"diagonal share of A: {np.mean(diagonal_share):.3f}")


if __name__ == "__main__":
    main()
