#!/usr/bin/env bash
# Install what the test suite needs on a fresh machine, then run the whole suite.
#
#   ./scripts/test.sh [pytest arguments]
#   ./scripts/test.sh --fresh [pytest arguments]   clone HEAD into a temporary folder and run there
#   ./scripts/test.sh --fresh --twice [...]         ... and run it again at once in the same clone
#                                                   (state left by a first run must not break a second)
#
# System packages (when missing, with apt-get, as root or through sudo):
#   chromium    the real-browser test drives Debian's /usr/bin/chromium (no browser download)
#   postgresql  the store and ingest tests also run against a PostgreSQL server the suite starts
# Python packages go into ./.venv (MIXPLAN_VENV overrides the folder). The install is skipped while
# the venv's stamp is newer than pyproject.toml; the stamp scripts/dashboard.sh checks is left too.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fresh" ]; then
  shift
  # What a new contributor gets: committed files only, a new venv, nothing from this checkout.
  work=$(mktemp -d "${TMPDIR:-/tmp}/mixplan-fresh-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  git clone -q --no-hardlinks . "$work/mixplan"
  # The data tests read ../shared beside the checkout; link it when this checkout has one.
  [ -d ../shared ] && ln -s "$(cd ../shared && pwd)" "$work/shared"
  runs=1
  if [ "${1:-}" = "--twice" ]; then
    shift
    runs=2
  fi
  echo "test.sh --fresh: $(git rev-parse --short HEAD) cloned to $work/mixplan" >&2
  for run in $(seq "$runs"); do
    started=$(date +%s)
    status=0
    env -u MIXPLAN_VENV -u PYTHONPATH -u VIRTUAL_ENV bash "$work/mixplan/scripts/test.sh" "$@" || status=$?
    echo "test.sh --fresh: run $run of $runs exited $status after $(( $(date +%s) - started )) s" >&2
    [ "$status" = 0 ] || exit "$status"
  done
  exit 0
fi

PYTHON=${PYTHON:-python3}
VENV=${MIXPLAN_VENV:-.venv}
TORCH_VERSION=2.13.0
STAMP="$VENV/.mixplan-test-installed"
DASHBOARD_STAMP="$VENV/.mixplan-installed"  # what scripts/dashboard.sh checks

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
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ ! -x "$VENV/bin/mixplan" ]; then
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" -e '.[test]'
  touch "$STAMP" "$DASHBOARD_STAMP"
fi

# Headless everywhere: no usage statistics, no browser windows. The tests run the console script
# beside this interpreter ($VENV/bin/mixplan), so nothing needs to be on PATH.
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
