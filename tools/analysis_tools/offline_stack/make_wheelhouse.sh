#!/usr/bin/env bash
# Download, on a machine that reaches the package registry, everything
# mmrsrefseg needs beyond PyTorch on an OFFLINE CUDA machine whose Python
# already has torch and transformers' own dependencies (tokenizers,
# safetensors, huggingface_hub, accelerate), sentencepiece, protobuf, opencv,
# numpy, scipy and matplotlib (as the lent H200 machine had: Python 3.12,
# torch 2.11 + CUDA 13). About 35 MB; keep it in the git-ignored
# `wheelhouse/` of the checkout so that it travels with the tree. Used by
# tools/analysis_tools/gpu_check.sh (through setup_stack.sh).
#
# Usage: bash tools/analysis_tools/offline_stack/make_wheelhouse.sh [OUT]
#   OUT defaults to wheelhouse/; PYTHON (default .venv/bin/python, else
#   python3) must have torch and setuptools<81 so that pip can read mmcv's
#   sdist; PYVER (default 3.12) is the offline machine's Python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
OUT=${1:-$ROOT/wheelhouse}
PYVER=${PYVER:-3.12}
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p "$OUT"
BIN=(--no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp
     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
     --platform manylinux1_x86_64 -d "$OUT")
# the OpenMMLab stack, transformers 5, peft and their small dependencies;
# deepspeed's run-time dependencies; pytest for the CUDA tests
"$PY" -m pip download -q "${BIN[@]}" mmengine==0.10.7 mmsegmentation==1.2.2 \
  mmdet==3.3.0 "transformers>=5.0,<6" "peft>=0.13" addict termcolor \
  yapf==0.40.1 "importlib-metadata<9" platformdirs tomli prettytable ftfy \
  regex wcwidth terminaltables shapely pycocotools "typing-extensions>=4.16" \
  hjson pydantic pydantic-core annotated-types typing-inspection einops \
  msgpack py-cpuinfo ninja psutil pytest pluggy iniconfig rich \
  markdown-it-py mdurl pygments
"$PY" -m pip download -q --no-deps -d "$OUT" segment-anything==1.0
# sdists: mmcv (its pure-Python tree is used, see setup_stack.sh) and the
# deepspeed that requirements/optional.txt pins (its source tree runs from
# PYTHONPATH; ops are JIT-compiled only when used)
"$PY" -m pip download -q --no-deps --no-build-isolation --no-binary=:all: \
  -d "$OUT" mmcv==2.1.0
DEEPSPEED=$(grep -E '^deepspeed==' "$ROOT/requirements/optional.txt")
"$PY" -m pip download -q --no-deps --no-build-isolation --no-binary=:all: \
  -d "$OUT" "$DEEPSPEED"
ls "$OUT"
du -sh "$OUT"
