#!/usr/bin/env bash
# The main job on the embedded default, on any machine (CPU is enough):
#   1. install what is missing (tools/install.sh),
#   2. write the synthetic RRSIS-D (native layout) and tiny checkpoints, and
#      pretrain the tiny CLIP / SigLIP for image-text alignment on the train
#      split (the role of its own pretraining; see
#      tools/misc/pretrain_tiny_clip.py),
#   3. train the model with 2 processes: tools/dist_train.sh CONFIG 2,
#   4. test the best checkpoint on the synthetic test split and on the
#      control split (each expression swapped for another object's), and
#      print both results.
# Environment: MODEL (rsrefseg, the default: RSRefSeg with a tiny CLIP + SAM;
# rsrefseg2: RSRefSeg 2 with a tiny SigLIP + SAM 2.1), GPUS (default 2),
# WORK_DIR, DATA_ROOT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODEL=${MODEL:-rsrefseg}
case "$MODEL" in
  rsrefseg) TITLE=RSRefSeg-tiny ;;
  rsrefseg2) TITLE='RSRefSeg 2-tiny' ;;
  *) echo "MODEL must be rsrefseg or rsrefseg2, got '$MODEL'" >&2; exit 2 ;;
esac
CONFIG=configs/${MODEL}_tiny_synthetic.py
GPUS=${GPUS:-2}
WORK_DIR=${WORK_DIR:-work_dirs/${MODEL}_tiny_synthetic}
DATA_ROOT=${DATA_ROOT:-data/synthetic_rrsisd}

bash tools/install.sh
PY="$ROOT/.venv/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"

if [ ! -f "$DATA_ROOT/rrsisd/refs(unc).p" ]; then
  "$PY" tools/dataset_converters/make_synthetic_rrsisd.py "$DATA_ROOT"
fi
"$PY" tools/misc/make_tiny_checkpoints.py "$CONFIG"
"$PY" tools/misc/pretrain_tiny_clip.py "$CONFIG" "$DATA_ROOT"

bash tools/dist_train.sh "$CONFIG" "$GPUS" --work-dir "$WORK_DIR" \
  --cfg-options train_dataloader.dataset.data_root="$DATA_ROOT" \
  val_dataloader.dataset.data_root="$DATA_ROOT"

CKPT=$(ls -t "$WORK_DIR"/best_mIoU_*.pth | head -n 1)
for SPLIT in test control; do
  bash tools/dist_test.sh "$CONFIG" "$CKPT" "$GPUS" \
    --work-dir "$WORK_DIR/test_$SPLIT" --out "$WORK_DIR/results_$SPLIT.json" \
    --cfg-options test_dataloader.dataset.data_root="$DATA_ROOT" \
    test_dataloader.dataset.split="$SPLIT"
done

"$PY" - "$WORK_DIR" "$TITLE" <<'PYEOF'
import json, sys
work_dir, title = sys.argv[1:3]
rows = {s: json.load(open(f'{work_dir}/results_{s}.json'))['summary']
        for s in ('test', 'control')}
keys = ['oIoU', 'mIoU', 'Pr@0.5', 'Pr@0.7', 'Pr@0.9', 'num_samples']
print(f'\n{title} on the synthetic RRSIS-D (original resolution)')
print(f"{'split':<10}" + ''.join(f'{k:>12}' for k in keys))
for split, summary in rows.items():
    print(f'{split:<10}' + ''.join(f'{summary[k]:>12}' for k in keys))
ratio = rows['test']['oIoU'] / max(rows['control']['oIoU'], 1e-6)
print(f'test oIoU / control oIoU = {ratio:.2f} '
      '(a model that ignores the referring expression scores ~1)')
PYEOF
