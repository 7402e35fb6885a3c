#!/usr/bin/env bash
# Install what the test suite needs on a fresh machine, then run the whole suite.
#
#   ./scripts/test.sh [pytest arguments]
#
# System packages (when missing, with apt-get, as root or through sudo):
#   chromium    the real-browser test drives Debian's /usr/bin/chromium (no browser download)
#   postgresql  the store and ingest tests also run against a PostgreSQL server the suite starts
# Python packages go into ./.venv (MIXPLAN_VENV overrides the folder).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${MIXPLAN_VENV:-.venv}
TORCH_VERSION=2.13.0

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "test.sh: cannot install ${missing[*]} (not root, no sudo); install them and run again." >&2
    exit 1
  fi
  echo "test.sh: installing ${missing[*]} with apt-get" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" -e '.[test]'

# Headless everywhere: no usage statistics, no browser windows.
export STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure." >&2
  exit 1
fi
exit "$status"
