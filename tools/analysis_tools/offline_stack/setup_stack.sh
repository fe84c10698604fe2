#!/usr/bin/env bash
# Source on an offline CUDA machine (Python with torch preinstalled, see
# make_wheelhouse.sh), from the project root:
#   source tools/analysis_tools/offline_stack/setup_stack.sh WHEELHOUSE
# Installs the wheelhouse into $STACK_DIR (default /tmp/mmrsrefseg_stack)
# with pip --target, unpacks mmcv 2.1.0's pure-Python tree with
# mmcv_ext_stub.py as mmcv._ext and the deepspeed sdist's source tree, and
# exports PYTHONPATH (project first) and PYTHON=python3. About 20 s.
#
# mmcv._ext is a stub: mmseg and mmdet import mmcv.ops when they are
# imported, RSRefSeg calls no mmcv op, and compiling mmcv's ops costs
# minutes; any op actually called raises. A measurement shortcut, not how
# users install (tools/install.sh builds mmcv with its ops).
WH=${1:?usage: source setup_stack.sh WHEELHOUSE}
WH=$(cd "$WH" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJ=$(cd "$HERE/../../.." && pwd)
STACK_DIR=${STACK_DIR:-/tmp/mmrsrefseg_stack}
rm -rf "$STACK_DIR"
mkdir -p "$STACK_DIR"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --target "$STACK_DIR/site" "$WH"/*.whl
tar xzf "$WH"/mmcv-2.1.0.tar.gz -C "$STACK_DIR"
cp "$HERE/mmcv_ext_stub.py" "$STACK_DIR/mmcv-2.1.0/mmcv/_ext.py"
DS=""
for sdist in "$WH"/deepspeed-*.tar.gz; do
  [ -f "$sdist" ] || continue
  tar xzf "$sdist" -C "$STACK_DIR"
  DS=$(ls -d "$STACK_DIR"/deepspeed-*/ | head -1)
done
export PYTHONPATH="$PROJ:${DS:+${DS%/}:}$STACK_DIR/mmcv-2.1.0:$STACK_DIR/site"
export PYTHON=python3 PYTHONUNBUFFERED=1
python3 -c "import torch, mmcv, mmseg, mmdet, transformers, peft, \
segment_anything, mmrsrefseg; from mmcv.ops import nms; \
print('stack ok: torch', torch.__version__, '|', \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA', \
'| mmseg', mmseg.__version__, '| transformers', transformers.__version__, \
'| peft', peft.__version__)"
