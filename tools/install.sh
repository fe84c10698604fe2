#!/usr/bin/env bash
# Idempotent installer for mmrsrefseg and its OpenMMLab stack.
#
# Implements the verified install order (docs: shared/docs/STACK.md):
#   1. torch==2.13.0 first (any range admitting a newer torch pulls a CUDA build),
#   2. setuptools<81 (mmcv 2.1.0's setup.py imports pkg_resources),
#   3. mmcv==2.1.0 compiled WITH its ops (MMCV_WITH_OPS=1, --no-build-isolation),
#      then verified: an ops-less mmcv installs silently and breaks later,
#   4. mmsegmentation 1.2.2, mmdet 3.3.0, transformers 5.x, segment-anything,
#      peft, pycocotools, ftfy, regex, test tools,
#   5. Meta's sam2 1.1.0 (SAM 2.1, RSRefSeg 2) with --no-deps: its setup.py
#      declares torchvision and a CUDA extension, its model code needs neither
#      (requirements/sam2.txt lists it and its real dependencies),
#   6. this package in editable mode.
# torchvision is never installed (no CPU build exists in the registry and the
# CUDA build breaks `import transformers`).
#
# Usage: bash tools/install.sh            # into ./.venv (created if missing)
#        VENV=/path/to/venv bash tools/install.sh
#        PYTHON=python3.11 bash tools/install.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '[install] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

has() {  # has MODULE VERSION: true when MODULE is importable at exactly VERSION
  "$PY" - "$1" "$2" <<'PYEOF' >/dev/null 2>&1
import importlib.metadata as md, sys
sys.exit(0 if md.version(sys.argv[1]) == sys.argv[2] else 1)
PYEOF
}

# 1-2. torch (CPU wheel on these machines) and a setuptools mmcv can build with.
if ! has torch 2.13.0 && ! has torch 2.13.0+cpu; then
  log "installing torch==2.13.0"
  "${PIP[@]}" "torch==2.13.0"
fi
"${PIP[@]}" -q "setuptools>=77.0.3,<81" wheel
"${PIP[@]}" -q -c "$ROOT/requirements/constraints.txt" \
  mmengine==0.10.7 numpy opencv-python addict yapf pyyaml Pillow packaging

# 3. mmcv with compiled ops.
mmcv_ok() {
  "$PY" -c "import mmcv, torch; from mmcv.ops import nms, point_sample; \
assert mmcv.__version__ == '2.1.0'; \
b = torch.tensor([[0., 0., 1., 1.]]); nms(b, torch.ones(1), 0.5)" >/dev/null 2>&1
}
if ! mmcv_ok; then
  log "building mmcv==2.1.0 with ops (about 6-7 minutes on 2 cores)"
  "$PY" -m pip uninstall -y -q mmcv mmcv-lite >/dev/null 2>&1 || true
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "${PIP[@]}" --no-build-isolation \
    -c "$ROOT/requirements/constraints.txt" mmcv==2.1.0
  if ! mmcv_ok; then
    log "ERROR: mmcv 2.1.0 installed but its compiled ops (mmcv._ext) do not work"
    exit 1
  fi
fi
log "mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)') with compiled ops: ok"

# 4-6. The rest of the stack, Meta's sam2 (--no-deps), this package (editable).
"${PIP[@]}" -q -c "$ROOT/requirements/constraints.txt" \
  -r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/runtime.txt" \
  -r "$ROOT/requirements/tests.txt"
SAM2_BUILD_CUDA=0 "${PIP[@]}" -q --no-deps --no-build-isolation \
  -r "$ROOT/requirements/sam2.txt"
"${PIP[@]}" -q --no-build-isolation --no-deps -e "$ROOT"

if "$PY" -c "import torchvision" >/dev/null 2>&1; then
  log "WARNING: torchvision is installed in $VENV; mmrsrefseg does not need it and"
  log "         the registry's CUDA build breaks transformers' CLIP import."
fi
"$PY" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
# pip check, less sam2's declared torchvision requirement (left unmet on
# purpose, see step 5)
problems="$("$PY" -m pip check 2>&1 | grep -v -e '^sam2 [0-9.]* requires torchvision' \
  -e '^No broken requirements found' || true)"
if [ -n "$problems" ]; then
  printf '%s\n' "$problems"
  exit 1
fi
log "done: $("$PY" -c 'import mmrsrefseg; print("mmrsrefseg", mmrsrefseg.__version__)')"
