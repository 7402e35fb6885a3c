"""Benchmark: stream-prepare a synthetic JSONL domain; peak memory and throughput beside a bare copy.

    python bench/prepare_data.py                 # a 2 GB domain (about 25,000 documents of ~80 kB)
    python bench/prepare_data.py --size 200MB    # smaller, for a quick look

The domain is generated into a temporary folder (one ``{"text": ...}`` a line,
English-like text with line breaks and ~1% non-ASCII words, escaped as
``json.dumps`` does, documents distinct). Two commands read
it, each in a fresh subprocess, alternating ``--repeats`` times (best time kept):

- prep: ``engine.train.data.prepare_data`` with byte tokens (parse each line,
  hash it for the validation split, append its tokens to train/val part files,
  flush them to the OS and save the resume point after every chunk; no fsync);
- reference: the same file read in chunks of the same size, ``np.frombuffer``
  on each chunk and the array written to one output file (no parsing at all):
  the disk-and-copy floor any prep pays.

With ``--baseline DIR`` (a checkout of older code, e.g. ``git worktree add /tmp/old 3100471``)
the prep of that checkout runs too, in the same alternation, so old and new are measured
under the same load.

Peak resident set size (``ru_maxrss``) of each subprocess is reported with its
growth over the RSS after its imports. The targets are a peak under 1 GB and a
prep time within 2x of the reference. The input is in the page cache after
generation for both commands, so this measures CPU work, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PREP = """
import json, resource, sys, time
from engine.train.data import prepare_data
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
prepared = prepare_data(sys.argv[2], {"big": [sys.argv[1]]}, chunk_bytes=int(sys.argv[3]))
seconds = time.perf_counter() - started
d = prepared.domains["big"]
print(json.dumps({"seconds": seconds, "base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "tokens": d.train_tokens + d.val_tokens, "documents": d.train_documents + d.val_documents,
                  "val_documents": d.val_documents}))
"""

REFERENCE = """
import json, resource, sys, time
import numpy as np
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
total = 0
with open(sys.argv[1], "rb") as src, open(sys.argv[2] + ".bin", "wb") as dst:
    while block := src.read(int(sys.argv[3])):
        tokens = np.frombuffer(block, dtype=np.uint8)
        tokens.tofile(dst)
        total += tokens.size
    dst.flush()
    import os; os.fsync(dst.fileno())
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "tokens": total}))
"""


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    for unit, factor in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def write_domain(path: Path, size: int, doc_bytes: int, seed: int = 0) -> int:
    # .jsonl: one JSON object a line; .txt: the same documents separated by blank lines.
    """About ``size`` bytes of JSONL: documents of ~``doc_bytes`` of English-like text, each distinct.

    Mostly ASCII words with line breaks, quotes and about 1% non-ASCII words, written as
    ``json.dumps`` does (non-ASCII as \\uXXXX escapes), like a web-text dump.
    """
    rng = random.Random(seed)
    words = ("the of and to in a is that for it as was with be by on not he this are or his from at which but "
             "have an they you were her she there one all we their has been would more when will if no out so "
             "what up data model mixture token training loss").split()
    rare = ["café", "naïve", "Straße", "über", "数据", "\"quoted\"", "C:\\path"]
    bodies = []
    for _ in range(32):  # 32 bodies, prefixed with the document number: no two documents equal
        text, n = [], 0
        while n < doc_bytes:
            word = rng.choice(rare) if rng.random() < 0.01 else rng.choice(words)
            if rng.random() < 0.08:
                word += "." + ("\n" if rng.random() < 0.3 else "")
            text.append(word)
            n += len(word) + 1
        bodies.append(" ".join(text))
    written = documents = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < size:
            text = f"document {documents}: {bodies[documents % 32]}"
            line = json.dumps({"text": text}) + "\n" if path.suffix == ".jsonl" else text + "\n\n"
            handle.write(line)
            written += len(line.encode("utf-8"))
            documents += 1
    return documents


def run(code: str, *args: str, repo: Path = REPO) -> dict:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    # cwd too: "python -c" puts the working directory ahead of PYTHONPATH on sys.path.
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False,
                          cwd=repo)
    if done.returncode != 0:
        raise SystemExit(f"subprocess failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2GB", help="Size of the generated domain (e.g. 2GB, 200MB).")
    parser.add_argument("--doc-bytes", type=int, default=80_000, help="Approximate bytes of one document.")
    parser.add_argument("--chunk", type=int, default=16 << 20, help="Bytes of input a chunk (both commands).")
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each command, alternating; best kept.")
    parser.add_argument("--formats", default="jsonl,txt", help="Input formats to generate, comma-separated.")
    parser.add_argument("--baseline", default=None, help="A checkout of older code whose prep runs alongside.")
    parser.add_argument("--workdir", default=None, help="Folder for the temporary files (default: system temp).")
    args = parser.parse_args()
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="mixplan-prep-bench-", dir=args.workdir))
    print(f"# mixplan prepare-data streaming benchmark — {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"# machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f} (shared); chunks of {args.chunk / 2**20:.0f} MiB; "
          f"best of {args.repeats}")
    print()
    print("| input | command | seconds | MB/s | peak RSS (MB) | RSS growth over imports (MB) | prep / reference |")
    print("|---|---|---:|---:|---:|---:|---:|")
    verdicts = []
    try:
        for fmt in args.formats.split(","):
            src = work / f"big.{fmt}"
            documents = write_domain(src, size, args.doc_bytes)
            mb = src.stat().st_size / 1e6
            prep_runs, ref_runs, base_runs = [], [], []
            order = ("prep", "ref") + (("base",) if args.baseline else ())
            for r in range(args.repeats):
                for which in (order if r % 2 == 0 else order[::-1]):
                    out = work / f"{which}-{r}"
                    runs, code = {"prep": (prep_runs, PREP), "ref": (ref_runs, REFERENCE),
                                  "base": (base_runs, PREP)}[which]
                    repo = Path(args.baseline).resolve() if which == "base" else REPO
                    runs.append(run(code, str(src), str(out), str(args.chunk), repo=repo))
                    shutil.rmtree(out, ignore_errors=True)
                    Path(str(out) + ".bin").unlink(missing_ok=True)
            src.unlink()
            label = f"{mb:,.0f} MB .{fmt}, {documents:,} docs"
            ref_best = min(r["seconds"] for r in ref_runs)
            ratio = min(p["seconds"] for p in prep_runs) / ref_best
            rows = [("prepare_data (bytes)", prep_runs), ("np.frombuffer + write", ref_runs)]
            if base_runs:
                rows.append((f"baseline prepare_data ({Path(args.baseline).name})", base_runs))
            for name, runs in rows:
                best = min(x["seconds"] for x in runs)
                peak = max(x["peak_kb"] for x in runs) / 1024
                print(f"| {label} | {name} | {best:.2f} | {mb / best:,.0f} | {peak:,.0f} "
                      f"| {max(x['peak_kb'] - x['base_kb'] for x in runs) / 1024:,.0f} "
                      f"| {f'{best / ref_best:.2f}x' if 'prepare' in name else ''} |")
            peak_mb = max(p["peak_kb"] for p in prep_runs) / 1024
            prep = prep_runs[0]
            verdicts.append(
                f".{fmt}: {prep['tokens']:,} tokens, {prep['documents']:,} documents ({prep['val_documents']:,} held "
                f"out); peak RSS {peak_mb:,.0f} MB, {'under' if peak_mb < 1024 else 'OVER'} the 1 GB target; "
                f"prep / reference {ratio:.2f}x, {'within' if ratio <= 2 else 'OUTSIDE'} the 2x target.")
        print()
        for line in verdicts:
            print(line)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
