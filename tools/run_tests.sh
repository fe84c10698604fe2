#!/usr/bin/env bash
# The project's test command (README and .ci/run): installs what is missing,
# checks code style (flake8, isort, yapf as configured in setup.cfg), then runs
# the pytest suite. Extra arguments go to pytest, e.g. `-k metric`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/install.sh
PY="$ROOT/.venv/bin/python"

# Headless Chromium for the web demo's browser test (Debian's package; the
# test is skipped without it). Test-only, so not in tools/install.sh.
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "[tests] installing chromium (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "[tests] chromium not found and cannot apt-get install it (needs" \
      "root and apt-get): the web demo's browser tests will be skipped"
  fi
fi

echo "[tests] lint: flake8, isort, yapf"
LINT_PATHS=(mmrsrefseg tools tests demo configs setup.py)
"$PY" -m flake8 "${LINT_PATHS[@]}"
"$PY" -m isort --check-only --diff mmrsrefseg tools tests demo setup.py
"$PY" -m yapf --diff --recursive mmrsrefseg tools tests demo setup.py

echo "[tests] pytest"
set +e
"$PY" -m pytest tests "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "[tests] ERROR: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
