"""Benchmark: how long a large import keeps other SQLite writers waiting.

A tidy CSV of ``--runs`` runs (5 domains, 2 targets, 2 checkpoints: 4 measurements a run) is imported
by ``mixplan``'s ``ingest_files`` in one subprocess while a probe in another process takes SQLite's
write lock again and again (``BEGIN IMMEDIATE`` ... ``COMMIT``, as any writer must: another import,
a fit, a plan) and times each wait. Printed per code tree: the import's wall time, how many times the
probe got the lock during it, and the probe's median and longest wait - the longest wait is the
longest stretch the import held the lock.

    python bench/ingest_lock.py                               # this tree
    python bench/ingest_lock.py --reference /path/to/old/tree  # and an older checkout, same run

The import subprocesses run in the measured tree (PYTHONPATH and working directory); this script is the same.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPORT = "import sys; from engine.services.ingest import ingest_files; print(ingest_files('big', [sys.argv[1]], url=sys.argv[2]).runs_added)"
SETUP = "import sys; from engine.services.ingest import ingest_files; ingest_files('small', [sys.argv[1]], url=sys.argv[2])"


def write_logs(path: Path, runs: int) -> None:
    lines = ["run_id,tokens,mix:a,mix:b,mix:c,mix:d,mix:e,loss:x,loss:y"]
    for i in range(runs):
        a = (i * 7919 % 1000) / 1000 * 0.5
        b = (i * 104729 % 1000) / 1000 * (1 - a) * 0.5
        rest = (1 - a - b) / 3
        for c in (1, 2):
            lines.append(f"r{i},{c * 1000},{a:.6f},{b:.6f},{rest:.6f},{rest:.6f},{1 - a - b - 2 * rest:.6f},"
                         f"{3 - a + 1 / c:.4f},{2.5 - b + 1 / c:.4f}")
    path.write_text("\n".join(lines) + "\n")


def measure(tree: Path, logs: Path, folder: Path) -> dict:
    """Import ``logs`` with the code of ``tree`` while probing the write lock; the probe's waits."""
    db = folder / f"{tree.name}.sqlite"
    url = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": str(tree), "MIXPLAN_HOME": str(folder / "home")}
    small = folder / "small.csv"
    write_logs(small, 5)
    # cwd=tree: "python -c" puts the working directory ahead of PYTHONPATH on sys.path.
    subprocess.run([sys.executable, "-c", SETUP, str(small), url], env=env, cwd=tree, check=True)  # schema, WAL
    probe = sqlite3.connect(db, timeout=600, isolation_level=None)
    started = time.perf_counter()
    importer = subprocess.Popen([sys.executable, "-c", IMPORT, str(logs), url], env=env, cwd=tree, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    waits = []
    while importer.poll() is None:
        t0 = time.perf_counter()
        probe.execute("BEGIN IMMEDIATE")
        waits.append(time.perf_counter() - t0)
        probe.execute("COMMIT")
        time.sleep(0.02)  # pacing, so the probe does not starve the import
    wall = time.perf_counter() - started
    out, err = importer.communicate()
    if importer.returncode != 0:
        raise SystemExit(f"the import with {tree} failed:\n{err[-2000:]}")
    probe.close()
    return {"tree": str(tree), "runs": int(out.strip().splitlines()[-1]), "wall": wall, "probes": len(waits),
            "median": statistics.median(waits) if waits else float("nan"), "max": max(waits, default=float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--reference", type=Path, help="an older code tree to measure in the same run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mixplan-lock-") as tmp:
        folder = Path(tmp)
        logs = folder / "big.csv"
        write_logs(logs, args.runs)
        trees = ([args.reference.resolve()] if args.reference else []) + [REPO]
        rows = []
        for tree in trees:
            rows.append(measure(tree, logs, folder))
            (folder / "home").mkdir(exist_ok=True)
    print(f"# import lock hold: {args.runs} runs x 2 checkpoints x 2 targets, SQLite (WAL), "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, no GPU, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'code':<28}{'runs':>7}{'import s':>10}{'probes':>8}{'median wait s':>15}{'longest wait s':>16}")
    for row in rows:
        name = "this tree" if Path(row["tree"]) == REPO else f"reference {Path(row['tree']).name}"
        print(f"{name:<28}{row['runs']:>7}{row['wall']:>10.1f}{row['probes']:>8}{row['median']:>15.3f}{row['max']:>16.2f}")


if __name__ == "__main__":
    main()
