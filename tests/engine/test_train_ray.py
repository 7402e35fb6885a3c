"""Sweeps on a real local Ray cluster (``ray start --head --num-cpus 2``), driven by address.

The cluster and the driver live in a network namespace of their own (``unshare -n``,
then ``ip link set lo up``): loopback is the only interface there, so Ray reports
node IP 127.0.0.1 and no test traffic leaves the machine. Where namespaces are not
allowed the cluster binds 127.0.0.1 explicitly (``--node-ip-address``).
Kills are injected by ``tests/faults/sitecustomize.py`` at fixed points of a run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.store import Job, Run, session_scope

sys.path.insert(0, str(Path(__file__).parent))
from sweep_helpers import REPO, eval_log, kills, make_data, measurement_counts, write_faults  # noqa: E402

pytestmark = pytest.mark.slow

if os.environ.get("CI"):
    import ray  # noqa: F401  CI installs the test extra, which includes ray: a missing Ray is a failure there
else:
    pytest.importorskip("ray", reason="pip install 'mixplan[ray]' to run the Ray executor tests")

PORT = 6379  # inside a namespace of its own nothing else can hold it


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults = root / "faults"
        # No token auth: the cluster is reachable only inside its namespace, and a token file left in
        # ~/.ray by another Ray session would otherwise switch the head to tokens and lock the driver out.
        self.env = {**os.environ, **write_faults(self.faults, {}), "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_AUTH_MODE": "disabled"}
        self.sleeper = None
        self.prefix: list[str] = []
        if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
            self.sleeper = subprocess.Popen(["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 3600"],
                                            stdout=subprocess.PIPE, text=True)
            # Wait for it: entering /proc/PID/ns/net before unshare ran would join this machine's namespace.
            assert self.sleeper.stdout.readline().strip() == "up", "could not bring up lo in the namespace"
            self.prefix = ["nsenter", f"--net=/proc/{self.sleeper.pid}/ns/net"]
        self.ray = str(Path(sys.executable).with_name("ray"))

    def run(self, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([*self.prefix, *args], env=self.env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:  # say what the driver printed before it hung
            pytest.fail(f"{args[:4]} ran past {timeout} s; stderr:\n{exc.stderr}\nstdout:\n{exc.stdout}")

    def start(self) -> None:
        extra = [] if self.sleeper else ["--node-ip-address", "127.0.0.1"]
        started = self.run([self.ray, "start", "--head", "--num-cpus", "2", "--include-dashboard=false",
                            "--disable-usage-stats", "--port", str(PORT), "--object-store-memory", "100000000",
                            "--temp-dir", str(self.root / "ray"), *extra], timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr

    def stop(self) -> None:
        self.run([self.ray, "stop", "--force"], timeout=120)
        if self.sleeper is not None:
            self.sleeper.kill()
            self.sleeper.wait()

    def mixplan(self, *args: str) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-c", "from engine.cli import main; main()", *args])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = Path(tmp_path_factory.mktemp("ray"))
    c = Cluster(root)
    c.env["PYTHONPATH"] = os.pathsep.join([str(REPO), c.env["PYTHONPATH"]])
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _sweep(cluster: Cluster, tmp_path: Path, prefix: str, n: int, kill: dict, *extra: str):
    data = make_data(tmp_path)
    write_faults(cluster.faults, kill)
    url = f"sqlite:///{tmp_path / 'mixplan.sqlite'}"
    result = cluster.mixplan(
        "sweep", "--project", "p", "--data", data, "--n", str(n), "--budgets", "4096", "--model", "micro",
        "--seq-len", "32", "--evals", "4", "--prefix", prefix, "--checkpoint-seconds", "0", "--json",
        "--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}", "--db", url,
        "--checkpoint-dir", str(tmp_path / "checkpoints"), *extra)
    start = result.stdout.find("[\n")  # the JSON document; Ray may print its workers' log lines before it
    assert start >= 0, result.stdout + result.stderr
    outcomes = {o["run"]: o for o in json.loads(result.stdout[start:])}
    return result, outcomes, url


def test_the_cluster_is_on_loopback_only(cluster):
    probe = cluster.run([sys.executable, "-c", "import ray; ray.init(address='127.0.0.1:%d', logging_level='ERROR');"
                         "print(sorted({n['NodeManagerAddress'] for n in ray.nodes()}))" % PORT], timeout=180)
    assert probe.stdout.strip().splitlines()[-1] == "['127.0.0.1']", probe.stdout + probe.stderr


def test_a_sweep_completes_on_ray(cluster, tmp_path):
    result, outcomes, url = _sweep(cluster, tmp_path, "ok", 3, {})
    assert result.returncode == 0, result.stderr
    assert sorted(o["status"] for o in outcomes.values()) == ["complete"] * 3
    assert set(measurement_counts(url).values()) == {(12, 12)}  # 4 evaluations x 3 targets, once each
    with session_scope(url) as s:
        sweep_job = s.scalar(select(Job).where(Job.kind == "sweep"))
    assert sweep_job.state == "done" and sweep_job.config["executor"] == "ray"


def test_a_ray_worker_killed_mid_run_is_retried_by_ray_and_resumes(cluster, tmp_path):
    result, outcomes, url = _sweep(cluster, tmp_path, "kill", 2, {"kill-s0-m000-4.096k": {"at_eval": 2, "times": 1}})
    assert result.returncode == 0, result.stderr
    victim = "kill-s0-m000-4.096k"
    assert set(outcomes) == {victim, "kill-s0-m001-4.096k"}
    assert kills(cluster.faults, victim) == 1
    writes = eval_log(cluster.faults)[victim]
    pids = list(dict.fromkeys(pid for pid, _ in writes))
    assert len(pids) == 2, writes
    first, second = ([t for p, t in writes if p == pid] for pid in pids)
    assert len(first) == 2 and second[0] == first[1], writes  # resumed at evaluation 2 from the checkpoint
    assert set(measurement_counts(url).values()) == {(12, 12)}  # exactly once despite the retry
    with session_scope(url) as s:
        assert {r.name: r.status for r in s.scalars(select(Run))} == {n: "complete" for n in outcomes}
        jobs = [j for j in s.scalars(select(Job).where(Job.kind == "train"))]
    dead = [j for j in jobs if j.state == "failed"]
    assert len(dead) == 1 and "Ray retried" in dead[0].error


def test_a_run_that_always_kills_its_ray_worker_fails_alone(cluster, tmp_path):
    crasher = "crash-s0-m000-4.096k"
    result, outcomes, url = _sweep(cluster, tmp_path, "crash", 3, {crasher: {"at_eval": 1, "times": None}},
                                   "--max-retries", "1")
    assert result.returncode == 1 and "1 of 3 runs failed" in result.stderr
    assert outcomes[crasher]["status"] == "failed" and "died 2 times" in outcomes[crasher]["error"]
    assert sorted(o["status"] for n, o in outcomes.items() if n != crasher) == ["complete", "complete"]
    assert len({pid for pid, _ in eval_log(cluster.faults)[crasher]}) == 2  # Ray ran it twice
    with session_scope(url) as s:
        runs = {r.name: r.status for r in s.scalars(select(Run))}
    assert runs[crasher] == "failed" and sorted(runs.values()) == ["complete", "complete", "failed"]


def test_pending_runs_train_on_ray_and_complete_their_rows(cluster, tmp_path):
    import numpy as np

    from engine.plan.constraints import Constraints
    from engine.services.fits import fit_project
    from engine.services.ingest import ingest_files
    from engine.services.next_runs import list_pending, suggest_pending

    data = make_data(tmp_path)
    url = f"sqlite:///{tmp_path / 'mixplan.sqlite'}"
    names = ["alpha", "beta", "gamma"]  # make_data's domains
    rng = np.random.default_rng(0)
    lines = ["run_id,tokens," + ",".join(f"mix:{d}" for d in names) + "," + ",".join(f"loss:{d}" for d in names)]
    for i, p in enumerate(rng.dirichlet(np.ones(len(names)), 12)):
        losses = [3 + np.exp(-2 * share) + rng.normal(0, .01) for share in p]
        lines.append(f"r{i},4096," + ",".join(f"{x:.6f}" for x in p) + "," + ",".join(f"{x:.5f}" for x in losses))
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    ingest_files("p", [tmp_path / "runs.csv"], url=url)
    fit_project("p", laws=["linear"], folds=3, bootstrap=4, url=url)
    pending = suggest_pending("p", 1e6, 1, Constraints(), url=url)
    result = cluster.mixplan("train-pending", "--project", "p", "--data", data, "--names", pending[0].name,
                             "--tokens", "4096", "--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}",
                             "--db", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.state for p in list_pending("p", url=url)] == ["done"]
    with session_scope(url) as s:
        sweep_job = s.scalar(select(Job).where(Job.kind == "sweep"))
    assert sweep_job.state == "done" and sweep_job.config["executor"] == "ray"
