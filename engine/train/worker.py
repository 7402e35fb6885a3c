"""One run of a local sweep, in a process of its own: ``python -m engine.train.worker SPEC RESULT``.

Reads the spec (JSON) from SPEC, trains it with the database URL of the
environment (``MIXPLAN_DATABASE_URL``) and writes the outcome (JSON) to RESULT
only when the run ended, complete or failed; a worker that dies leaves no
RESULT, which is how the executor tells a dead worker from a failed run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from engine.train.executor import run_one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.train.worker")
    parser.add_argument("spec", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    outcome = run_one(json.loads(args.spec.read_text(encoding="utf-8")), None, args.threads)
    tmp = args.result.with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome.to_dict()), encoding="utf-8")
    os.replace(tmp, args.result)  # the executor never reads half a result
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
