"""The store under a team's load: 4 concurrent uploaders and 2 concurrent fits against one project.

    python bench/store_load.py                 # PostgreSQL (a throwaway server) and SQLite
    python bench/store_load.py --backend sqlite

Six processes (4 uploaders, 2 fitters) plus one reader, on 127.0.0.1 only, bounded
loops. Each uploader imports its own tidy CSVs (new runs) and re-imports one it
already sent (which must add nothing); each fitter fits the linear law on the
project as it grows; the reader keeps loading the stored fits while they are
written. Checked at the end: every uploaded run is there exactly once (lose
nothing, duplicate nothing), one import batch per distinct file, and no fit the
reader ever saw lacked its parameters or cross-validation figures (no half-written
fit). On SQLite an operation may instead fail with the store's "database is busy"
error; any other failure is counted as such. Printed per backend: operations,
failures by kind, p95 latency per operation.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

UPLOADERS, FITTERS = 4, 2
UPLOADS_EACH, RUNS_PER_FILE, FITS_EACH = 5, 40, 3
PROJECT = "team"


def tidy_csv(path: Path, uploader: int, batch: int) -> None:
    lines = ["run_id,tokens,mix:web,mix:code,mix:wiki,loss:web,loss:code"]
    for j in range(RUNS_PER_FILE):
        a = ((uploader * 7 + batch * 13 + j * 17) % 97) / 97 * 0.8 + 0.1
        b = (1 - a) * ((j * 29 % 11) / 11)
        c = 1 - a - b
        run = f"u{uploader}-b{batch}-r{j}"
        for tokens, scale in ((1000, 1.1), (2000, 1.0)):
            lines.append(f"{run},{tokens},{a:.4f},{b:.4f},{c:.4f},{scale * (3 - a):.4f},{scale * (3.2 - b):.4f}")
    path.write_text("\n".join(lines) + "\n")


def classify(exc: BaseException) -> str:
    text = str(exc).lower()
    if "database is busy" in text:
        return "busy (clear error)"
    if "locked" in text:
        return "locked (raw sqlite error)"
    return f"other: {type(exc).__name__}: {str(exc)[:120]}"


def uploader(url: str, folder: str, index: int) -> dict:
    from engine.services.ingest import ingest_files

    latencies, failures, added = [], [], 0
    paths = []
    for batch in range(UPLOADS_EACH):
        path = Path(folder) / f"u{index}-b{batch}.csv"
        tidy_csv(path, index, batch)
        paths.append(path)
    for path in [*paths, paths[0]]:  # the last one repeats the first: it must add nothing
        started = time.perf_counter()
        try:
            added += ingest_files(PROJECT, [path], url=url).runs_added
        except Exception as exc:  # noqa: BLE001 - counted and reported, the load goes on
            failures.append(classify(exc))
        latencies.append(time.perf_counter() - started)
    return {"op": "upload", "latencies": latencies, "failures": failures, "runs_added": added}


def fitter(url: str, index: int) -> dict:
    from engine.services.fits import fit_project

    latencies, failures = [], []
    for k in range(FITS_EACH):
        started = time.perf_counter()
        try:
            fit_project(PROJECT, laws=["linear"], folds=3, bootstrap=5, seed=index * 10 + k, url=url)
        except Exception as exc:  # noqa: BLE001
            failures.append(classify(exc))
        latencies.append(time.perf_counter() - started)
        time.sleep(0.2)
    return {"op": "fit", "latencies": latencies, "failures": failures}


def reader(url: str, stop_file: str) -> dict:
    """Loads every stored fit again and again while they are written; a fit without params or CV is half-written."""
    from sqlalchemy import select

    from engine.store import LawFit, session_scope

    latencies, failures, half, seen = [], [], 0, set()
    while not Path(stop_file).exists():
        started = time.perf_counter()
        try:
            with session_scope(url) as s:
                for fit in s.scalars(select(LawFit)):
                    seen.add(fit.id)
                    if not fit.params or not fit.cv_metrics or not fit.data_hash:
                        half += 1
        except Exception as exc:  # noqa: BLE001
            failures.append(classify(exc))
        latencies.append(time.perf_counter() - started)
        time.sleep(0.1)
    return {"op": "read fits", "latencies": latencies, "failures": failures, "half_written": half,
            "fits_seen": len(seen)}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered else float("nan")


def run_load(label: str, url: str, folder: Path) -> None:
    from sqlalchemy import func, select

    from engine.services.ingest import ingest_files
    from engine.store import IngestBatch, Measurement, Run, session_scope

    seed = folder / "seed.csv"
    tidy_csv(seed, 99, 0)
    ingest_files(PROJECT, [seed], url=url)  # the fits have runs from the start
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=UPLOADERS + FITTERS + 1, mp_context=get_context("spawn")) as pool:
        jobs = [pool.submit(uploader, url, str(folder), i) for i in range(UPLOADERS)]
        jobs += [pool.submit(fitter, url, i) for i in range(FITTERS)]
        watch = pool.submit(reader, url, str(folder / "writers-done"))
        results = [j.result() for j in jobs]
        (folder / "writers-done").touch()
        results.append(watch.result())
    wall = time.perf_counter() - started
    expected_runs = RUNS_PER_FILE * (1 + UPLOADERS * UPLOADS_EACH)
    with session_scope(url) as s:
        runs = s.scalar(select(func.count()).select_from(Run))
        distinct = s.scalar(select(func.count(func.distinct(Run.name))))
        batches = s.scalar(select(func.count()).select_from(IngestBatch))
        measurements = s.scalar(select(func.count()).select_from(Measurement))
    upload_failures = sum(len(r["failures"]) for r in results if r["op"] == "upload")
    print(f"\n## {label}: {wall:.1f} s wall, load {os.getloadavg()[0]:.1f}")
    print(f"{'operation':<12}{'ops':>6}{'failed':>8}{'p95 s':>9}{'max s':>9}  failures")
    for op in ("upload", "fit", "read fits"):
        rows = [r for r in results if r["op"] == op]
        lat = [x for r in rows for x in r["latencies"]]
        fails = [f for r in rows for f in r["failures"]]
        kinds = {k: fails.count(k) for k in sorted(set(fails))}
        print(f"{op:<12}{len(lat):>6}{len(fails):>8}{p95(lat):>9.2f}{max(lat):>9.2f}  {kinds or '-'}")
    read = results[-1]
    print(f"runs stored {runs} (distinct names {distinct}; expected {expected_runs} if no upload failed, "
          f"{upload_failures} upload(s) failed), measurements {measurements} (2 checkpoints x 2 targets per run: "
          f"{'ok' if measurements == 4 * runs else 'MISMATCH'}), import batches {batches} "
          f"(expected {1 + UPLOADERS * UPLOADS_EACH}: a repeated file adds none)")
    accepted = RUNS_PER_FILE + sum(r["runs_added"] for r in results if r["op"] == "upload")  # seed + reported
    print(f"duplicates: {runs - distinct}; lost (reported added, not stored): {accepted - runs}"
          f"; half-written fits seen by the reader: {read['half_written']} (of {read['fits_seen']} fits)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    args = parser.parse_args()
    print(f"# store under load: {UPLOADERS} uploaders x {UPLOADS_EACH + 1} imports ({RUNS_PER_FILE} runs each), "
          f"{FITTERS} fitters x {FITS_EACH} fits, 1 reader")
    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} cores, no GPU, load before {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="mixplan-load-") as tmp:
        tmp = Path(tmp)
        if args.backend in ("postgres", "both"):
            from pg_server import start_server

            server = start_server()
            if server is None:
                print("\n## PostgreSQL: no server binaries under /usr/lib/postgresql/*/bin; skipped")
            else:
                try:
                    (tmp / "pg").mkdir()
                    run_load("PostgreSQL", server.create_database("load"), tmp / "pg")
                finally:
                    server.stop()
        if args.backend in ("sqlite", "both"):
            (tmp / "sqlite").mkdir()
            run_load("SQLite (WAL, busy timeout)", f"sqlite:///{tmp / 'sqlite' / 'store.sqlite'}", tmp / "sqlite")


if __name__ == "__main__":
    main()
