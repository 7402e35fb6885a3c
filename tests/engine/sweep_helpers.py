"""Shared by the executor tests (local pool and Ray): a tiny prepared corpus and fault injection."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from sqlalchemy import BigInteger, func, literal, select

from engine.store import Measurement, Run, session_scope
from engine.train.data import prepare_data

FAULTS_DIR = Path(__file__).resolve().parents[1] / "faults"  # holds the sitecustomize that injects kills
REPO = Path(__file__).resolve().parents[2]


def make_data(tmp_path: Path) -> str:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = {"alpha": "abc abd abe " * 60, "beta": "0123 4567 89 " * 60, "gamma": "<a><b></b></a> " * 60}
    sources = {}
    for name, text in texts.items():
        (corpus / f"{name}.jsonl").write_text("".join(json.dumps({"text": f"{i} {text}"}) + "\n" for i in range(6)))
        sources[name] = [str(corpus / f"{name}.jsonl")]
    prepare_data(tmp_path / "prep", sources, val_fraction=0.3)
    return str(tmp_path / "prep")


def write_faults(folder: Path, kill: dict) -> dict[str, str]:
    """Write the fault file; returns the environment that makes worker processes obey it."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "faults.json"
    config.write_text(json.dumps({"log": str(folder / "evals.log"), "kill": kill}))
    (folder / "evals.log").touch()
    path = os.pathsep.join(p for p in (str(FAULTS_DIR), str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {"MIXPLAN_TEST_FAULTS": str(config), "PYTHONPATH": path}


def eval_log(folder: Path) -> dict[str, list[tuple[int, int]]]:
    """Committed evaluations per run, in order: [(pid, tokens seen)]."""
    seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for line in (folder / "evals.log").read_text().splitlines():
        name, pid, tokens = line.split()
        seen[name].append((int(pid), int(tokens)))
    return dict(seen)


def kills(folder: Path, name: str) -> int:
    return len([p for p in folder.iterdir() if p.name.startswith(f"killed-{name}-")])


def measurement_counts(url: str) -> dict[str, tuple[int, int]]:
    """Per run: (measurement rows, distinct (target, tokens) points); equal when nothing is duplicated."""
    with session_scope(url) as s:
        rows = s.execute(select(Run.name, func.count(Measurement.id),
                                func.count(func.distinct(Measurement.target_id * literal(10**12, BigInteger)
                                                    + Measurement.tokens_seen)))
                         .join(Measurement, Measurement.run_id == Run.id, isouter=True).group_by(Run.name))
        return {name: (n, distinct) for name, n, distinct in rows}
