"""Fault injection for the sweep executor tests, loaded by worker processes through PYTHONPATH.

Python imports ``sitecustomize`` at start-up; with ``MIXPLAN_TEST_FAULTS`` naming a
JSON file this one wraps ``engine.train.records.write_measurements`` (once that
module is imported) so that a worker process kills itself with SIGKILL (what the
OOM killer sends) right after a given evaluation of a given run was committed:

    {"log": "/tmp/x/evals.log",
     "kill": {"RUN NAME": {"at_eval": 2, "times": 1}}}   # times: null = on every attempt

Every committed evaluation is appended to ``log`` as "RUN PID TOKENS". Kills are
counted in marker files next to the JSON file, so "times" holds across processes
and nodes of one machine. The tests synchronise on these points: nothing races
the training loop.
"""

import importlib.abc
import importlib.util
import json
import os
import signal
import sys

_CONFIG = os.environ.get("MIXPLAN_TEST_FAULTS")


def _install(records) -> None:
    original = records.write_measurements
    calls: dict[str, int] = {}

    def write_measurements(handle, tokens_seen, losses, progress, url=None):
        original(handle, tokens_seen, losses, progress, url)
        with open(_CONFIG, encoding="utf-8") as f:
            config = json.load(f)
        from engine.store import Run, session_scope

        with session_scope(url) as s:
            name = s.get(Run, handle.run_id).name
        with open(config["log"], "a", encoding="utf-8") as f:
            f.write(f"{name} {os.getpid()} {tokens_seen}\n")
        calls[name] = calls.get(name, 0) + 1
        fault = config.get("kill", {}).get(name)
        if fault is None or calls[name] != fault["at_eval"]:
            return
        if fault.get("times") is not None:
            done = [p for p in os.listdir(os.path.dirname(_CONFIG)) if p.startswith(f"killed-{name}-")]
            if len(done) >= fault["times"]:
                return
            open(os.path.join(os.path.dirname(_CONFIG), f"killed-{name}-{len(done)}"), "w").close()
        os.kill(os.getpid(), signal.SIGKILL)

    records.write_measurements = write_measurements


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "engine.train.records":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            _install(module)

        spec.loader.exec_module = exec_module
        return spec


if _CONFIG:
    sys.meta_path.insert(0, _Finder())
