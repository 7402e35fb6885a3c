"""Shared helpers for the ingest tests: table counts and small log files in each format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.errors import InputError
from engine.services.ingest import ingest_files
from engine.store import Base, get_engine


def table_counts(url: str) -> dict[str, int]:
    """Row count of every table in the schema."""
    engine = get_engine(url)
    with engine.connect() as connection:
        return {name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in Base.metadata.tables.items()}


def rejected(url: str, paths: list[Path], project: str = "p") -> InputError:
    """The InputError importing ``paths`` raises; the database as it was, and the message says how to fix it."""
    before = table_counts(url)
    with pytest.raises(InputError) as info:
        ingest_files(project, paths, url=url)
    assert table_counts(url) == before, "a rejected import changed the database"
    assert "Fix:" in str(info.value), str(info.value)
    return info.value


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


TIDY = """run_id,tokens,model_params,mix:web,mix:code,loss:web,loss:code,acc:arc,seed,lr
r1,1000,1000000,0.7,0.3,3.5,2.9,0.31,1,0.001
r1,2000,1000000,0.7,0.3,3.1,2.5,0.35,1,0.001
r2,1000,1000000,0.2,0.8,3.9,2.2,0.28,2,0.002
r2,2000,1000000,0.2,0.8,3.6,2.0,0.30,2,0.002
"""


def tidy_csv(folder: Path, text: str = TIDY, name: str = "runs.csv") -> Path:
    return write(folder / name, text)


def jsonl(folder: Path, runs: list[dict] | None = None, name: str = "runs.jsonl") -> Path:
    runs = runs if runs is not None else [
        {"run_id": "a", "mixture": {"web": 0.5, "code": 0.5}, "model_params": 2e6, "tokens": 4000, "seed": 3,
         "optimizer": "adamw", "measurements": [{"target": "val_loss", "tokens": 2000, "value": 3.3},
                                                 {"target": "val_loss", "tokens": 4000, "value": 3.0}]},
        {"run_id": "b", "mixture": {"web": 1.0}, "tokens": 4000,
         "measurements": [{"target": "val_loss", "tokens": 4000, "value": 3.4}]},
    ]
    return write(folder / name, "".join(json.dumps(r) + "\n" for r in runs))


def olmix_pair(folder: Path, n: int = 6) -> tuple[Path, Path]:
    """A swarm pair in the layout Olmix writes (pandas to_csv with its index)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    domains = ["dclm:health", "dclm:science", "arxiv"]
    tasks = ["arc_easy:rc::olmes", "hellaswag:rc::olmes"]
    shares = rng.dirichlet(np.ones(len(domains)), size=n)
    ids = [f"swarm-{i:03d}" for i in range(n)]
    ratios = pd.DataFrame({"run": ids, "name": [f"olmo-30m-swarm-{i}" for i in range(n)], "index": range(n)})
    for j, d in enumerate(domains):
        ratios[d] = shares[:, j]
    metrics = pd.DataFrame({"run": ids, "name": [f"olmo-30m-swarm-{i}" for i in range(n)], "index": range(n)})
    for t in tasks:
        metrics[t] = rng.uniform(0.8, 1.4, size=n)
    ratios_path, metrics_path = folder / "swarm_ratios.csv", folder / "swarm_metrics.csv"
    ratios.to_csv(ratios_path)
    metrics.to_csv(metrics_path)
    return ratios_path, metrics_path
