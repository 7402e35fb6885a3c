"""Benchmark: import synthetic run logs into SQLite and PostgreSQL, beside a bare bulk insert of the same rows.

The logs are a tidy CSV (one row per run and checkpoint): 20 domains
(``mix:d00``..), 20 targets (``loss:t00``..), 5 checkpoints, plus run_id,
tokens, model_params and seed columns. For each size and backend:

- import: ``engine.services.ingest.ingest_files`` in a fresh subprocess
  (parse, validate, dedupe, write; one transaction);
- reference: the same runs and measurements inserted in a fresh subprocess
  with the same driver's plainest bulk path (``executemany`` of prepared
  tuples on sqlite3; ``executemany`` for runs and ``COPY`` for measurements
  on psycopg 3), rows prepared chunk by chunk and only the insert calls timed;
- memory: peak resident set size of the import subprocess (``resource.getrusage``
  ``ru_maxrss``), and its growth over the RSS just before the import started.

Run: ``python bench/ingest.py`` (1k, 10k, 100k runs) or ``--sizes 1000,10000``;
``--backends sqlite`` skips PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOMAINS, TARGETS, CHECKPOINTS = 20, 20, 5
TOKENS_PER_CHECKPOINT = 20_000_000


def write_logs(path: Path, runs: int, seed: int = 0) -> None:
    """A tidy CSV of ``runs`` runs x 5 checkpoints, written row by row (never held in memory)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    header = ["run_id", "tokens", "model_params", "seed"] + [f"mix:d{j:02d}" for j in range(DOMAINS)] + \
             [f"loss:t{i:02d}" for i in range(TARGETS)]
    with open(path, "w") as out:
        out.write(",".join(header) + "\n")
        for start in range(0, runs, 1000):
            count = min(1000, runs - start)
            shares = rng.dirichlet(np.full(DOMAINS, 0.5), size=count)
            base = 2.0 + rng.random((count, TARGETS)) * 3
            for i in range(count):
                mix = ",".join(f"{s:.17g}" for s in shares[i])
                for c in range(1, CHECKPOINTS + 1):
                    losses = ",".join(f"{v:.6f}" for v in base[i] * (1 + 1.0 / c))
                    out.write(f"run{start + i},{c * TOKENS_PER_CHECKPOINT},1000000,{start + i},{mix},{losses}\n")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child_import(url: str, path: str) -> dict:
    from engine.services.ingest import ingest_files
    from engine.store import get_engine

    get_engine(url)  # schema creation is not part of the import
    baseline = rss_mb()
    start = time.perf_counter()
    report = ingest_files("bench", [path], url=url)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "runs": report.runs_added, "measurements": report.measurements_added,
            "peak_mb": peak, "baseline_mb": baseline}


def child_reference(url: str, runs: int) -> dict:
    """Insert the same rows with the driver directly; only the insert calls are timed."""
    import numpy as np
    from sqlalchemy import insert

    from engine.store import Domain, EvalTarget, Project, get_engine

    engine = get_engine(url)
    with engine.begin() as connection:
        project_id = connection.execute(insert(Project).returning(Project.id), [{"name": "ref", "description": ""}]).scalar()
        connection.execute(insert(Domain), [{"project_id": project_id, "name": f"d{j:02d}", "tags": {}} for j in range(DOMAINS)])
        target_ids = list(connection.execute(insert(EvalTarget).returning(EvalTarget.id),
                                             [{"project_id": project_id, "name": f"t{i:02d}"} for i in range(TARGETS)]).scalars())
    rng = np.random.default_rng(0)
    raw = engine.raw_connection()
    driver = raw.driver_connection
    postgres = engine.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    run_sql = (f"INSERT INTO run (id, project_id, name, mixture, model_params, tokens, seed, source_file, provenance, method, "
               f"status, content_hash, created_at) VALUES ({', '.join([mark] * 13)})")
    now = datetime.now(timezone.utc).isoformat(" ")
    timed = 0.0
    cursor = driver.cursor()
    for start in range(0, runs, 1000):
        count = min(1000, runs - start)
        shares = rng.dirichlet(np.full(DOMAINS, 0.5), size=count)
        base = 2.0 + rng.random((count, TARGETS)) * 3
        run_rows = [(start + i + 1, project_id, f"run{start + i}",
                     json.dumps({f"d{j:02d}": float(s) for j, s in enumerate(shares[i])}), 1000000,
                     CHECKPOINTS * TOKENS_PER_CHECKPOINT, start + i, "ref.csv", "{}", "static", "complete", "x" * 64, now)
                    for i in range(count)]
        measurement_rows = [(start + i + 1, target_ids[t], c * TOKENS_PER_CHECKPOINT, float(base[i, t] * (1 + 1.0 / c)))
                            for i in range(count) for c in range(1, CHECKPOINTS + 1) for t in range(TARGETS)]
        tic = time.perf_counter()
        cursor.executemany(run_sql, run_rows)
        if postgres:
            with cursor.copy("COPY measurement (run_id, target_id, tokens_seen, value) FROM STDIN") as copy:
                for row in measurement_rows:
                    copy.write_row(row)
        else:
            cursor.executemany("INSERT INTO measurement (run_id, target_id, tokens_seen, value) VALUES (?, ?, ?, ?)",
                               measurement_rows)
        timed += time.perf_counter() - tic
    tic = time.perf_counter()
    driver.commit()
    timed += time.perf_counter() - tic
    raw.close()
    return {"seconds": timed}


def in_subprocess(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.node()} | {cpu} | {os.cpu_count()} cores | Python {platform.python_version()} | {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated run counts")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")

    # A terminated benchmark still stops its PostgreSQL server (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = None
    if "postgres" in backends:
        sys.path.insert(0, str(REPO / "tests"))
        from pg_server import start_server

        server = start_server()
        if server is None:
            print("no PostgreSQL server binaries found; PostgreSQL rows skipped")
            backends.remove("postgres")
    print(f"# bench/ingest.py  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"# machine: {machine()}")
    print(f"# logs: tidy CSV, {DOMAINS} domains, {TARGETS} targets, {CHECKPOINTS} checkpoints per run")
    print(f"# memory: peak RSS of the import subprocess (ru_maxrss) and its growth over the RSS just before the import")
    header = f"{'backend':9} {'runs':>7} {'measurements':>12} {'import s':>9} {'runs/s':>8} {'bare insert s':>13} {'ratio':>6} {'peak MB':>8} {'growth MB':>9}"
    print(header)
    print("-" * len(header))
    try:
        with tempfile.TemporaryDirectory(prefix="mixplan-bench-") as folder:
            for n in sizes:
                logs = Path(folder) / f"logs_{n}.csv"
                write_logs(logs, n)
                for backend in backends:
                    urls = []
                    for kind in ("import", "reference"):
                        if backend == "sqlite":
                            urls.append(f"sqlite:///{folder}/{kind}_{n}.sqlite")
                        else:
                            urls.append(server.create_database(f"bench_{kind}_{n}"))
                    ours = in_subprocess("--child", "import", urls[0], str(logs))
                    ref = in_subprocess("--child", "reference", urls[1], str(n))
                    print(f"{backend:9} {ours['runs']:>7} {ours['measurements']:>12} {ours['seconds']:>9.2f} "
                          f"{ours['runs'] / ours['seconds']:>8.0f} {ref['seconds']:>13.2f} {ours['seconds'] / ref['seconds']:>6.2f} "
                          f"{ours['peak_mb']:>8.0f} {ours['peak_mb'] - ours['baseline_mb']:>9.0f}", flush=True)
                logs.unlink()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(REPO))
        kind, url, arg = sys.argv[2:5]
        result = child_import(url, arg) if kind == "import" else child_reference(url, int(arg))
        print(json.dumps(result))
    else:
        main()
