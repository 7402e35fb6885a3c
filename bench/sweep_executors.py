"""Sweep executors: 8 tiny proxy runs through the local pool and through Ray, wall time and overhead.

    python bench/sweep_executors.py             # 8 runs, 2 workers / 2 Ray CPUs
    python bench/sweep_executors.py --runs 4    # a quicker look

Each executor runs the same 8 specs (micro model, 4,096 tokens, 2 evaluations)
into a fresh SQLite store. Per run, the trainer's own time (``RunOutcome.seconds``:
model, steps, evaluations, store writes) is what the work costs; the rest of the
wall time is the executor's overhead (a process start and imports per run locally;
a task, a worker and the shipped code on Ray). Ideal wall time = sum of run
seconds / slots; overhead ratio = wall / ideal. Ray's local cluster start is timed
apart (a team's cluster is already up). Like the tests, the bench runs itself in a
network namespace of its own where it can (``unshare -n``), so Ray stays on loopback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))

SLOTS = 2


def reexec_in_namespace() -> None:
    if os.environ.get("MIXPLAN_BENCH_NETNS") or not shutil.which("unshare"):
        return
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        print("(no network namespace here: Ray binds the machine's address)", flush=True)
        return
    env = dict(os.environ, MIXPLAN_BENCH_NETNS="1", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    command = " ".join(map(json.dumps, [sys.executable, *sys.argv]))
    raise SystemExit(subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {command}"],
                                    env=env).returncode)


def make_specs(tmp: Path, runs: int):
    from engine.services.training import sweep_specs
    from engine.train.loop import TrainSpec
    from sweep_helpers import make_data  # the executor tests' tiny corpus: bench and tests time the same runs

    base = TrainSpec(project="bench", data_dir=make_data(tmp), name="", tokens=4096, model="micro", seq_len=32,
                     batch_size=8, evals=2, eval_sequences=4, threads=1)
    return sweep_specs(base, n=runs, budgets=[4096], seed=0)


def timed_sweep(label: str, specs, url: str, **options) -> dict:
    from engine.services.training import sweep

    started = time.perf_counter()
    outcomes = sweep(specs, url=url, **options)
    wall = time.perf_counter() - started
    assert sorted(o.status for o in outcomes) == ["complete"] * len(specs), [(o.name, o.error) for o in outcomes]
    work = sum(o.seconds for o in outcomes)
    ideal = work / SLOTS
    return {"executor": label, "runs": len(specs), "wall_s": wall, "run_s_total": work, "ideal_s": ideal,
            "overhead_ratio": wall / ideal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    reexec_in_namespace()
    import ray

    print(f"# sweep executors: {args.runs} tiny runs (micro, 4,096 tokens), {SLOTS} slots")
    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} cores, no GPU, ray {ray.__version__}, load before {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="mixplan-bench-") as tmp:
        tmp = Path(tmp)
        os.environ["MIXPLAN_HOME"] = str(tmp / "home")
        specs = make_specs(tmp, args.runs)
        rows.append(timed_sweep("local pool", specs, f"sqlite:///{tmp / 'local.sqlite'}", workers=SLOTS))
        started = time.perf_counter()
        ray.init(num_cpus=SLOTS, include_dashboard=False, logging_level="ERROR",
                 runtime_env={"py_modules": [str(ROOT / "engine")]})
        cluster_start = time.perf_counter() - started
        try:
            rows.append(timed_sweep("ray", specs, f"sqlite:///{tmp / 'ray.sqlite'}", executor="ray"))
        finally:
            ray.shutdown()
    print(f"{'executor':<12}{'runs':>6}{'wall s':>10}{'run s (sum)':>13}{'ideal s':>10}{'overhead':>10}")
    for r in rows:
        print(f"{r['executor']:<12}{r['runs']:>6}{r['wall_s']:>10.1f}{r['run_s_total']:>13.1f}{r['ideal_s']:>10.1f}"
              f"{r['overhead_ratio']:>9.2f}x")
    print(f"ray / local wall time: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x; "
          f"ray local cluster start (not in the sweep's wall time): {cluster_start:.1f} s")
    print(f"load after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
