#!/usr/bin/env bash
# Install mixplan into ./.venv (first time only) and open the dashboard on the demo project.
#
#   ./scripts/dashboard.sh [--port 8501] [--host 127.0.0.1]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${MIXPLAN_VENV:-.venv}
TORCH_VERSION=2.13.0
STAMP="$VENV/.mixplan-installed"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" -e .
  touch "$STAMP"
fi
exec "$VENV/bin/mixplan" dashboard "$@"
