"""A training run killed with SIGKILL midway, on SQLite and on the suite's real PostgreSQL: the job row says it
died, and a resumed run completes with every measurement exactly once.

The kill is the fault injection of ``tests/faults/sitecustomize.py``: the trainer process kills itself right
after its second evaluation was committed, so "midway" is a fact, not a guess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from engine.services.training import sweep_specs, train_run
from engine.store import Job, Run, session_scope
from engine.train.jobs import list_jobs
from engine.train.loop import TrainSpec

sys.path.insert(0, str(Path(__file__).parent))
from sweep_helpers import eval_log, kills, make_data, measurement_counts, write_faults  # noqa: E402


def test_a_training_killed_midway_is_marked_dead_and_a_resume_completes_once(db_url, tmp_path):
    base = TrainSpec(project="p", data_dir=make_data(tmp_path), name="", tokens=4096, model="micro", seq_len=32,
                     batch_size=8, evals=4, eval_sequences=4, checkpoint_seconds=0)
    spec = sweep_specs(base, n=1, budgets=[4096], seed=0)[0]
    faults = write_faults(tmp_path / "faults", {spec.name: {"at_eval": 2, "times": 1}})
    code = ("import sys; from engine.services.training import train_run; from engine.train.loop import TrainSpec; "
            "train_run(TrainSpec.from_dict(__import__('json').loads(sys.argv[1])), url=sys.argv[2])")
    trainer = subprocess.run([sys.executable, "-c", code, __import__("json").dumps(spec.to_dict()), db_url],
                             env={**os.environ, **faults}, capture_output=True, text=True, timeout=600)
    assert trainer.returncode == -signal.SIGKILL, trainer.stderr[-3000:]
    assert kills(tmp_path / "faults", spec.name) == 1
    assert len(eval_log(tmp_path / "faults")[spec.name]) == 2  # two evaluations were committed before the kill

    with session_scope(db_url) as s:
        assert s.scalar(select(Job.state).where(Job.kind == "train")) == "running"  # the row cannot know yet
    jobs = list_jobs("p", url=db_url)  # what `mixplan jobs` and the dashboard call: the dead job is failed
    assert [(j.kind, j.state) for j in jobs] == [("train", "failed")]
    assert "its process is gone" in jobs[0].error
    with session_scope(db_url) as s:
        assert s.scalar(select(Run.status).where(Run.name == spec.name)) == "failed"

    result = train_run(spec, url=db_url, resume=True)
    assert result is not None
    with session_scope(db_url) as s:
        assert [(r.name, r.status) for r in s.scalars(select(Run))] == [(spec.name, "complete")]
        states = sorted(s.scalars(select(Job.state).where(Job.kind == "train")))
    assert states == ["done", "failed"]
    assert measurement_counts(db_url)[spec.name] == (12, 12)  # 4 evaluations x 3 targets, none twice
