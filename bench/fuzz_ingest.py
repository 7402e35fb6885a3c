"""Fuzz every ingest format with seeded mutations of real log files; count how each case ends.

    python bench/fuzz_ingest.py [--cases 10002] [--seed 0] [--cap-seconds 10]

Seeds: the demo and synthetic logs under examples/ (JSONL, domain metadata YAML and CSV), a tidy CSV
made from the demo runs, the first rows of the RegMix pair in ../shared/data/regmix (when present)
and a small Olmix swarm pair. Each case applies 1-3 byte-level mutations (flipped bytes, cut spans,
duplicated or dropped lines, inserted quotes, aliases, NUL, 1e308, 400-digit numbers, blow-ups) to one
file of a format and imports it into a SQLite store. Outcomes: accepted, clear error (a MixplanError
naming the file or saying how to fix it), unclear error, traceback (any other exception), hang (over
the per-case time cap) and partial write (a rejected case that changed a table's row count).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from engine.errors import MixplanError  # noqa: E402
from engine.services.ingest import ingest_files  # noqa: E402
from engine.store import Base, dispose_engines, get_engine  # noqa: E402

REGMIX = ROOT.parent / "shared" / "data" / "regmix"
TOKENS = [b'"', b",", b"\n", b"1e308", b"-1", b"nan", b"inf", b"{", b"[", b"}", b"]", b"*a", b"&a ", b"\x00", b"\xff\xfe",
          b"0" * 400, b'""', b"\r", b"\t", b": ", b"- ", b"\xef\xbb\xbf", b"1" + b"0" * 30, b"-0", b"=SUM(A1)", b"\\u0000"]


class Hang(Exception):
    pass


def seeds() -> dict[str, list[tuple[str, bytes]]]:
    """Format -> the files of one import (name, bytes); the first file is the one mutated... or any of a pair."""
    demo = (ROOT / "examples/demo/runs.jsonl").read_bytes().splitlines(keepends=True)[:8]
    rows = [json.loads(line) for line in demo]
    domains = sorted(rows[0]["mixture"])
    targets = sorted({m["target"] for m in rows[0]["measurements"]})
    tidy = ["run_id,tokens," + ",".join(f"mix:{d}" for d in domains) + "," + ",".join(f"loss:{t}" for t in targets)]
    for r in rows:
        by_tokens = collections.defaultdict(dict)
        for m in r["measurements"]:
            by_tokens[m["tokens"]][m["target"]] = m["value"]
        for tokens, values in sorted(by_tokens.items())[:3]:
            tidy.append(",".join([r["run_id"], str(tokens), *(f"{r['mixture'][d]:.6f}" for d in domains),
                                  *(str(values.get(t, "")) for t in targets)]))
    olmix_ratios = ['"",run,name,index,dclm:health,arxiv']
    olmix_metrics = ['"",run,name,index,arc_easy:rc::olmes,hellaswag:rc::olmes']
    rng = random.Random(7)
    for i in range(6):
        share = rng.uniform(0.1, 0.9)
        olmix_ratios.append(f"{i},swarm-{i},olmo-30m-{i},{i},{share:.6f},{1 - share:.6f}")
        olmix_metrics.append(f"{i},swarm-{i},olmo-30m-{i},{i},{rng.uniform(0.8, 1.4):.4f},{rng.uniform(0.8, 1.4):.4f}")
    out = {
        "jsonl": [("runs.jsonl", b"".join(demo))],
        "tidy-csv": [("runs.csv", ("\n".join(tidy) + "\n").encode())],
        "olmix-pair": [("swarm_ratios.csv", ("\n".join(olmix_ratios) + "\n").encode()),
                       ("swarm_metrics.csv", ("\n".join(olmix_metrics) + "\n").encode())],
        "metadata-yaml": [("domains.yaml", (ROOT / "examples/demo/domains.yaml").read_bytes())],
        "metadata-csv": [("domains.csv", (ROOT / "examples/synthetic/domains.csv").read_bytes())],
    }
    if (REGMIX / "train_mixture_1m.csv").exists():
        head = lambda p: b"".join(p.read_bytes().splitlines(keepends=True)[:13])  # noqa: E731
        out["regmix-pair"] = [("train_mixture_1m.csv", head(REGMIX / "train_mixture_1m.csv")),
                              ("train_pile_loss_1m.csv", head(REGMIX / "train_pile_loss_1m.csv"))]
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    lines = data.splitlines(keepends=True) or [b""]
    kind = rng.randrange(11)
    pos = rng.randrange(len(data) + 1)
    if kind == 0 and data:
        i = rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if kind == 1:
        return data[:pos] + data[pos + rng.randrange(1, 200):]
    if kind == 2:
        i = rng.randrange(len(lines))
        return b"".join(lines[:i + 1] + lines[i:])
    if kind == 3 and len(lines) > 1:
        i = rng.randrange(len(lines))
        return b"".join(lines[:i] + lines[i + 1:])
    if kind == 4 and len(lines) > 2:
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines)
    if kind in (5, 6):
        return data[:pos] + rng.choice(TOKENS) + data[pos:]
    if kind == 7:
        return data[:pos]
    if kind == 8:
        chunk = data[pos:pos + rng.randrange(1, 80)] or b"x"
        return data[:pos] + chunk * rng.randrange(2, 1500) + data[pos:]
    if kind == 9:
        return lines[0]
    number = rng.choice([b"1e308", b"-1", b"nan", b"1" + b"0" * 400, b"1e-320", b"2.5", b"-0.0", b"1e19"])
    digits = [i for i, c in enumerate(data) if 48 <= c <= 57]
    if not digits:
        return data + number
    i = rng.choice(digits)
    return data[:i] + number + data[i + 1:]


def table_counts(url: str) -> dict[str, int]:
    with get_engine(url).connect() as c:
        return {name: c.execute(select(func.count()).select_from(t)).scalar_one() for name, t in Base.metadata.tables.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10002)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cap-seconds", type=float, default=10.0)
    args = parser.parse_args()
    formats = seeds()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="mixplan-fuzz-"))
    os.environ["MIXPLAN_HOME"] = str(work / "home")
    url = f"sqlite:///{work / 'fuzz.sqlite'}"
    # Metadata needs its domains in a project: import the unmutated runs once.
    ingest_files("demo", [ROOT / "examples/demo/runs.jsonl"], url=url)
    ingest_files("synthetic", [ROOT / "examples/synthetic/runs.jsonl"], url=url)

    def on_alarm(_signum, _frame):
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    counts = table_counts(url)
    outcomes = {f: collections.Counter() for f in formats}
    examples: dict[str, list[str]] = collections.defaultdict(list)
    names = list(formats)
    started = time.perf_counter()
    slowest = 0.0
    for case in range(args.cases):
        fmt = names[case % len(names)]
        files = list(formats[fmt])
        target = rng.randrange(len(files))
        name, data = files[target]
        for _ in range(rng.randrange(1, 4)):
            data = mutate(data, rng)
        files[target] = (name, data)
        folder = work / f"case{case}"
        folder.mkdir()
        paths = []
        for fname, content in files:
            (folder / fname).write_bytes(content)
            paths.append(folder / fname)
        project = {"metadata-yaml": "demo", "metadata-csv": "synthetic"}.get(fmt, f"case{case}")
        signal.setitimer(signal.ITIMER_REAL, args.cap_seconds)
        t0 = time.perf_counter()
        try:
            ingest_files(project, paths, url=url)
            outcome = "accepted"
        except Hang:
            outcome = "hang"
        except MixplanError as exc:
            text = str(exc)
            outcome = "clear error" if ("Fix:" in text or any(f in text for f, _ in files)) else "unclear error"
            if outcome == "unclear error":
                examples[outcome].append(f"{fmt}: {text[:200]}")
        except Exception as exc:  # noqa: BLE001  what the fuzzer is looking for
            outcome = "traceback"
            examples[outcome].append(f"{fmt} case {case}: {type(exc).__name__}: {str(exc)[:200]}\n"
                                     + "".join(traceback.format_tb(exc.__traceback__)[-2:]))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest = max(slowest, time.perf_counter() - t0)
        after = table_counts(url)
        if outcome != "accepted" and after != counts:
            outcomes[fmt]["partial write"] += 1
            examples["partial write"].append(f"{fmt} case {case}")
        counts = after
        outcomes[fmt][outcome] += 1
        for path in paths:
            path.unlink()
        folder.rmdir()
    elapsed = time.perf_counter() - started
    dispose_engines()
    shutil.rmtree(work, ignore_errors=True)
    columns = ["accepted", "clear error", "unclear error", "traceback", "hang", "partial write"]
    print(f"# ingest fuzzing: {args.cases} cases, seed {args.seed}, cap {args.cap_seconds:g} s per case")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} cores, no GPU, "
          f"load {os.getloadavg()[0]:.1f}; {elapsed:.0f} s ({1000 * elapsed / args.cases:.1f} ms a case, slowest {slowest:.2f} s)")
    print(f"{'format':<15}{'cases':>7}" + "".join(f"{c:>15}" for c in columns))
    total = collections.Counter()
    for fmt, counter in outcomes.items():
        n = sum(counter[c] for c in columns if c != "partial write")
        total.update(counter)
        print(f"{fmt:<15}{n:>7}" + "".join(f"{counter[c]:>15}" for c in columns))
    n = sum(total[c] for c in columns if c != "partial write")
    print(f"{'all':<15}{n:>7}" + "".join(f"{total[c]:>15}" for c in columns))
    for kind, items in examples.items():
        print(f"\n{kind} ({len(items)}), first 5:")
        for item in items[:5]:
            print("  " + item.replace("\n", "\n    "))


if __name__ == "__main__":
    main()
