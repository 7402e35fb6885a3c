"""The proxy training loop: learning, resume after an interruption, SIGKILL + heartbeat, idempotent writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from engine.services.projects import create_project
from engine.store import Job, Measurement, Run, session_scope
from engine.train.data import prepare_data
from engine.train.jobs import mark_stale_jobs
from engine.train.loop import Trainer, TrainSpec, eval_points, lr_at, train
from engine.train.records import begin_run, write_measurements

REPO = Path(__file__).resolve().parents[2]


def write_corpus(root: Path, docs: int = 12) -> dict[str, list[str]]:
    """Three small learnable domains with different statistics (words, numbers, markup)."""
    rng = np.random.default_rng(7)
    words = "the of and data mixture model token loss train law budget plan".split()
    makers = {
        "words": lambda: " ".join(rng.choice(words, size=400)),
        "numbers": lambda: " ".join(str(int(x)) for x in rng.integers(0, 100, size=500)),
        "markup": lambda: "".join(f"<{t}>{int(v)}</{t}>\n" for t, v in zip(rng.choice(list("abcd"), 150), rng.integers(0, 9, 150))),
    }
    sources = {}
    for name, make in makers.items():
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": make()}) + "\n" for _ in range(docs)))
        sources[name] = [str(path)]
    return sources


@pytest.fixture
def data_dir(tmp_path) -> str:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    prepare_data(tmp_path / "prep", write_corpus(corpus), val_fraction=0.2)
    return str(tmp_path / "prep")


def spec(data_dir: str, **overrides) -> TrainSpec:
    base = TrainSpec(project="p", data_dir=data_dir, name="r", tokens=16_384, model="micro", seq_len=32,
                     batch_size=8, lr=3e-3, evals=4, eval_sequences=8, threads=1, checkpoint_seconds=0,
                     mixture={"words": 0.5, "numbers": 0.3, "markup": 0.2})
    return replace(base, **overrides)


def curves(url: str, run_name: str) -> dict[tuple[str, int], float]:
    from engine.store import EvalTarget

    with session_scope(url) as s:
        rows = s.execute(
            select(EvalTarget.name, Measurement.tokens_seen, Measurement.value)
            .join(Measurement, Measurement.target_id == EvalTarget.id)
            .join(Run, Run.id == Measurement.run_id).where(Run.name == run_name)
        ).all()
    return {(t, n): v for t, n, v in rows}


def test_short_cpu_training_lowers_every_domain_loss(data_dir, sqlite_url):
    create_project("p", url=sqlite_url)
    s = spec(data_dir)
    before = Trainer(s).evaluate()  # same seed -> the same initial model train() starts from
    result = train(s, url=sqlite_url)
    assert result.status == "complete"
    assert set(result.final_losses) == {"words", "numbers", "markup"}
    for domain, loss in result.final_losses.items():
        assert loss < before[domain] - 0.5, (domain, before[domain], loss)
    stored = curves(sqlite_url, "r")
    points = eval_points(result.steps, 4)
    assert len(stored) == 3 * len(points)
    assert stored[("words", points[-1] * 256)] == pytest.approx(result.final_losses["words"])
    with session_scope(sqlite_url) as session:
        run = session.scalar(select(Run))
        assert (run.status, run.framework, run.method, run.tokens) == ("complete", "mixplan", "static", result.tokens)
        assert session.scalar(select(Job)).state == "done"


def test_training_loss_is_logged_and_stored_with_each_evaluation(data_dir, sqlite_url, caplog):
    create_project("p", url=sqlite_url)
    with caplog.at_level("INFO", logger="engine.train.loop"):
        result = train(spec(data_dir, evals=4), url=sqlite_url)
    lines = [r.getMessage() for r in caplog.records if "train loss" in r.getMessage()]
    assert len(lines) == 4 and all("tokens/s" in line and "validation loss" in line for line in lines)
    assert "MFU" not in lines[0]  # CPU: no peak to divide by
    with session_scope(sqlite_url) as session:
        curve = session.scalar(select(Run)).provenance["train_loss"]
    assert [tokens for tokens, _ in curve] == [p * 256 for p in eval_points(result.steps, 4)]
    values = [loss for _, loss in curve]
    assert all(np.isfinite(values)) and values[-1] < values[0] - 0.5
    # The first entry is the mean over the first quarter, so it lies under the untrained loss ln(256).
    assert values[0] < np.log(256) + 0.1
    assert f"train loss {values[-1]:.4f}" in lines[-1]


def test_evaluation_reads_a_fixed_share_of_the_run(data_dir):
    short = Trainer(spec(data_dir, tokens=16_384, evals=4, eval_sequences=None))
    long = Trainer(spec(data_dir, tokens=65_536, evals=4, eval_sequences=None))
    for trainer in (short, long):
        share = trainer.evaluator.tokens * 4 / trainer.spec.tokens
        assert 0.05 < share <= 0.1, share
    assert 3.5 < long.evaluator.tokens / short.evaluator.tokens <= 4.5  # scaled with the run's length
    assert Trainer(spec(data_dir, eval_share=0.02, eval_sequences=None)).evaluator.tokens < short.evaluator.tokens


def test_a_run_without_evaluations_records_its_training_loss(data_dir, sqlite_url):
    create_project("p", url=sqlite_url)
    result = train(spec(data_dir, evals=0), url=sqlite_url)
    assert result.final_losses == {} and curves(sqlite_url, "r") == {}
    with session_scope(sqlite_url) as session:
        (tokens, loss), = session.scalar(select(Run)).provenance["train_loss"]
    assert tokens == result.tokens and np.isfinite(loss)


class Stop(Exception):
    pass


@pytest.mark.parametrize("method", ["static", "aioli"])
def test_resume_after_an_interruption_matches_the_uninterrupted_run(data_dir, sqlite_url, method):
    create_project("p", url=sqlite_url)
    extra = {"aioli": replace(spec(data_dir).aioli, rounds=2, lp_steps=2)} if method == "aioli" else {}
    whole = train(spec(data_dir, name="whole", method=method, **extra), url=sqlite_url)

    def stop_midway(step, total):
        if step >= total // 2:
            raise Stop

    parted = spec(data_dir, name="parted", method=method, **extra)
    with pytest.raises(Stop):
        train(parted, url=sqlite_url, on_evaluation=stop_midway)
    with session_scope(sqlite_url) as session:
        assert session.scalar(select(Run.status).where(Run.name == "parted")) == "failed"
    resumed = train(parted, url=sqlite_url, resume=True)
    for domain, loss in whole.final_losses.items():
        assert resumed.final_losses[domain] == pytest.approx(loss, abs=1e-6)
    first, second = curves(sqlite_url, "whole"), curves(sqlite_url, "parted")
    assert first.keys() == second.keys()
    assert all(abs(first[k] - second[k]) < 1e-6 for k in first)
    if method == "aioli":
        with session_scope(sqlite_url) as session:
            schedules = dict(session.execute(select(Run.name, Run.schedule)).all())
        assert schedules["whole"] == schedules["parted"] and len(schedules["whole"]) == 1 + 2  # start + 2 rounds


def test_rerunning_a_stopped_run_without_resume_is_refused(data_dir, sqlite_url):
    create_project("p", url=sqlite_url)
    with pytest.raises(Stop):
        train(spec(data_dir), url=sqlite_url, on_evaluation=lambda step, total: (_ for _ in ()).throw(Stop()))
    from engine.errors import TrainError

    with pytest.raises(TrainError, match="pass --resume"):
        train(spec(data_dir), url=sqlite_url)


def test_sigkill_mid_run_is_marked_failed_and_resume_completes_without_duplicates(data_dir, tmp_path, sqlite_url):
    create_project("p", url=sqlite_url)
    env = {**os.environ, "MIXPLAN_DATABASE_URL": sqlite_url, "MIXPLAN_HOME": str(tmp_path / "home")}
    args = ["--project", "p", "--data", data_dir, "--tokens", "30k", "--model", "micro", "--seq-len", "32",
            "--mixture", "words=0.5,numbers=0.3,markup=0.2", "--name", "killed", "--evals", "20", "--threads", "1",
            "--checkpoint-seconds", "0"]
    process = subprocess.Popen([sys.executable, "-c", "from engine.cli import main; main()", "train", *args],
                               env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(curves(sqlite_url, "killed")) < 6:  # two evaluations written: the run is well under way
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the subprocess wrote no measurements in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with session_scope(sqlite_url) as session:
        assert session.scalar(select(Job.state)) == "running"  # nobody told the store
    assert len(mark_stale_jobs(sqlite_url)) == 1
    with session_scope(sqlite_url) as session:
        job = session.scalar(select(Job))
        assert job.state == "failed" and "process is gone" in job.error
        assert session.scalar(select(Run.status)) == "failed"
    killed_at = len(curves(sqlite_url, "killed"))
    resumed = subprocess.run([sys.executable, "-c", "from engine.cli import main; main()", "train", *args,
                              "--resume"], env=env, cwd=REPO, capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()
    with session_scope(sqlite_url) as session:
        count = session.scalar(select(func.count()).select_from(Measurement))
        distinct = session.execute(select(Measurement.target_id, Measurement.tokens_seen).distinct()).all()
        assert session.scalar(select(Run.status)) == "complete"
        assert [j.state for j in session.scalars(select(Job).order_by(Job.id))] == ["failed", "done"]
    assert count == len(distinct) == 3 * 20 >= killed_at


def test_measurement_writes_are_idempotent(db_url, tmp_path, data_dir):
    create_project("p", url=db_url)
    s = spec(data_dir)
    trainer = Trainer(s)
    from engine.train.loop import _run_fields
    from engine.train.records import ensure_domains_and_targets

    ensure_domains_and_targets("p", trainer.prepared.unique_tokens, data_dir, db_url)
    handle = begin_run("p", "r", _run_fields(trainer), {}, False, db_url)
    write_measurements(handle, 256, {"words": 3.0, "numbers": 2.0, "markup": 1.0}, 0.5, db_url)
    write_measurements(handle, 256, {"words": 3.5, "numbers": 2.0, "markup": 1.0}, 0.5, db_url)
    with session_scope(db_url) as session:
        values = sorted(session.scalars(select(Measurement.value)))
    assert values == [1.0, 2.0, 3.5]


def test_learning_rate_warms_up_then_decays_to_the_floor(data_dir):
    s = spec(data_dir, lr=1e-3, warmup_fraction=0.1, min_lr_ratio=0.1)
    rates = [lr_at(step, 100, s) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4)
    assert max(rates) == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(1e-4, rel=0.05)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))


def test_named_model_sizes_and_flops():
    from engine.errors import InputError
    from engine.train.model import GPT, GPTConfig, config_for

    params = {size: GPT(config_for(size, 256, 128)).num_params() for size in ("micro", "tiny", "small")}
    assert 0.5e6 < params["tiny"] < 1.5e6 and 5e6 < params["small"] < 15e6 and params["micro"] < params["tiny"]
    model = GPT(GPTConfig(vocab_size=256, seq_len=64, n_layer=2, n_head=2, d_model=32))
    assert model.head.weight is model.tok_emb.weight  # tied
    matmul = model.num_params() - 64 * 32  # all but the position table
    assert model.flops_per_token() == 6 * matmul + 12 * 2 * 32 * 64
    with pytest.raises(InputError, match="not divisible"):
        GPTConfig(n_head=3, d_model=128)
    with pytest.raises(InputError, match="unknown model size"):
        config_for("huge", 256, 128)


def test_jobs_of_other_hosts_fail_when_their_heartbeat_is_old(sqlite_url):
    from datetime import timedelta

    from engine.store import Project
    from engine.store.models import utcnow

    create_project("p", url=sqlite_url)
    with session_scope(sqlite_url) as s:
        pid = s.scalar(select(Project.id))
        for name, age in (("silent", 600), ("beating", 1)):
            s.add(Job(project_id=pid, kind="train", state="running", pid=1, config={"host": f"other-{name}"},
                      heartbeat_at=utcnow() - timedelta(seconds=age)))
        s.add(Job(project_id=pid, kind="train", state="running", pid=os.getpid(), config={"host": os.uname().nodename},
                  heartbeat_at=utcnow() - timedelta(seconds=600)))  # this very process: alive, whatever its beat
    assert mark_stale_jobs(sqlite_url, stale_after_seconds=60) == [1]
    with session_scope(sqlite_url) as s:
        jobs = list(s.scalars(select(Job).order_by(Job.id)))
    assert [j.state for j in jobs] == ["failed", "running", "running"]
    assert "no heartbeat since" in jobs[0].error
