#!/usr/bin/env bash
# The project's test command (README and .ci/run): installs what is missing,
# checks code style (flake8, isort, yapf as configured in setup.cfg), then runs
# the pytest suite. Extra arguments go to pytest, e.g. `-k metric`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/install.sh
PY="$ROOT/.venv/bin/python"

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
