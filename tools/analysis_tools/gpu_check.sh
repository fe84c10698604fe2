#!/usr/bin/env bash
# Every figure of the README's "Speed and memory against the authors'
# composition" that needs a CUDA GPU, in one run (about 8 minutes on an
# H200), from the project root of a checkout that holds a wheelhouse made by
# tools/analysis_tools/offline_stack/make_wheelhouse.sh (the machine may be
# offline; it needs a Python with torch and CUDA):
#
#   bash tools/analysis_tools/gpu_check.sh wheelhouse [OUT_DIR]
#
# Writes under OUT_DIR (default: $OUT, else work_dirs/gpu_check):
#   env.txt           torch / CUDA / GPU / package versions, nvidia-smi
#   benchmark.txt     benchmark.py --compare-authors --amp at batch 1, 8, 32:
#                     the table, the ratios, the top CUDA kernels
#   train.log         tools/dist_train.sh with the paper config (real-size,
#                     real-format random checkpoints, a synthetic RRSIS-D),
#                     TRAIN_ITERS iterations + validation: s/iter, memory
#   deepspeed.log     the same with the authors' DeepSpeed ZeRO-2 fp16 config
#   tests.txt         the CUDA FlexAttention parity test, the deepspeed tests
#   variant_*.txt     ours alone: attn_impl='sdpa_folded' (the CPU choice) and
#                     finetune_cfg.frozen_dtype='bfloat16'
#   summary.txt       each step's exit code and seconds
# Steps run in that order of priority (STEPS selects; default all); a step
# starts only while BUDGET seconds (default 540) are not spent and is cut at
# the budget, so the run ends in time and keeps what it measured.
#
# WHEELHOUSE '-' uses the current Python environment as it is. A dry run of
# the plumbing without a GPU (tiny config, CPU, no DeepSpeed):
#   DEVICE=cpu CONFIG=configs/rsrefseg_tiny_synthetic.py BATCHES="1 2" \
#     WARMUP=1 ITERS=2 TRAIN_ITERS=4 STEPS="checkpoints train variants" \
#     bash tools/analysis_tools/gpu_check.sh - /tmp/gpu_check
# (the tiny config is CLIP-based: the authors' composition, SigLIP only,
# has no comparison for it).
set -uo pipefail
WH=${1:?usage: bash tools/analysis_tools/gpu_check.sh WHEELHOUSE|- [OUT_DIR]}
OUT_DIR=${2:-${OUT:-work_dirs/gpu_check}}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=${WORK:-/tmp/mmrsrefseg_gpu_check}
CONFIG=${CONFIG:-configs/rsrefseg_vitb.py}
DS_CONFIG=${DS_CONFIG:-configs/rsrefseg/rsrefseg_siglip-so400m-sam-vitb_8xb1-deepspeed-fp16-200e_rrsisd-1024x1024.py}
DEVICE=${DEVICE:-cuda}
BATCHES=${BATCHES:-1 8 32}
WARMUP=${WARMUP:-2}
ITERS=${ITERS:-6}
TRAIN_ITERS=${TRAIN_ITERS:-30}
BUDGET=${BUDGET:-540}
STEPS=${STEPS:-stack checkpoints benchmark train deepspeed tests variants}
START=$SECONDS
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
PY=${PYTHON:-python3}

log() { echo "[gpu_check $((SECONDS - START))s] $*" | tee -a "$SUMMARY"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }
# run_step NAME MAX_SECONDS LOGFILE COMMAND...: cut at the budget
run_step() {
  local name=$1 max=$2 logfile=$3
  shift 3
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 30 ]; then
    log "$name: skipped (budget of ${BUDGET}s spent)"
    return 99
  fi
  [ "$max" -gt "$left" ] && max=$left
  local t0=$SECONDS
  timeout --kill-after=10 "$max" "$@" > "$logfile" 2>&1
  local rc=$?
  log "$name: rc=$rc in $((SECONDS - t0))s (limit ${max}s) -> $(basename "$logfile")"
  return $rc
}

# 1. the software stack (from the wheelhouse unless '-')
if want stack && [ "$WH" != "-" ]; then
  t0=$SECONDS
  # shellcheck source=/dev/null
  source tools/analysis_tools/offline_stack/setup_stack.sh "$WH" \
    > "$OUT_DIR/stack.txt" 2>&1
  log "stack: rc=$? in $((SECONDS - t0))s -> stack.txt"
  PY=python3
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export PYTHON=$PY
{
  "$PY" -c "import torch, transformers, peft, mmengine, mmseg; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, '|', \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA'); \
print('transformers', transformers.__version__, 'peft', peft.__version__, \
'mmengine', mmengine.__version__, 'mmseg', mmseg.__version__)"
  "$PY" -c "import deepspeed; print('deepspeed', deepspeed.__version__)"
  nvidia-smi
  git log -1 --format='commit %H %s'
} > "$OUT_DIR/env.txt" 2>&1
log "env: $(head -1 "$OUT_DIR/env.txt")"

# 2. real-size, real-format random checkpoints and a synthetic RRSIS-D
CK="$WORK/checkpoints"
DATA="$WORK/synthetic_rrsisd"
if want checkpoints; then
  rm -rf "$WORK"
  mkdir -p "$WORK"
  run_step checkpoints 120 "$OUT_DIR/checkpoints.txt" "$PY" \
    tools/misc/make_tiny_checkpoints.py "$CONFIG" --device "$DEVICE" \
    --cfg-options "model.backbone.pretrained=$CK/clip" \
    "model.decode_head.checkpoint=$CK/sam.pth"
  run_step data 60 "$OUT_DIR/data.txt" "$PY" \
    tools/dataset_converters/make_synthetic_rrsisd.py "$DATA" \
    --num-train 48 --num-val 8 --num-test 0 --img-size 800
fi

# A short run of CONFIG through the runner: iteration-based, the synthetic
# data, the random checkpoints, validation at the end, no checkpoint files.
short_config() {  # short_config CONFIG OUT_FILE
  cat > "$2" <<PYEOF
_base_ = ['$ROOT/$1']
train_dataloader = dict(
    num_workers=4, persistent_workers=False, dataset=dict(data_root='$DATA'))
val_dataloader = dict(
    num_workers=2, persistent_workers=False, dataset=dict(data_root='$DATA'))
test_dataloader = val_dataloader
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=$TRAIN_ITERS,
    val_interval=$TRAIN_ITERS)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)
]
default_hooks = dict(
    logger=dict(interval=5, log_metric_by_epoch=False),
    checkpoint=dict(
        by_epoch=False, interval=100000, save_last=False, save_best=None))
model = dict(
    backbone=dict(pretrained='$CK/clip'),
    decode_head=dict(checkpoint='$CK/sam.pth'))
PYEOF
}

# 3. the table: both models, batch 1 / 8 / 32, training and inference
if want benchmark; then
  run_step benchmark 330 "$OUT_DIR/benchmark.txt" "$PY" \
    tools/analysis_tools/benchmark.py "$CONFIG" --compare-authors \
    --device "$DEVICE" --amp --batch-size $BATCHES --warmup $WARMUP --iters $ITERS \
    --profile
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 99 ] && [ "$rc" -ne 124 ]; then
    log "benchmark failed: once more with attn_impl=sdpa_folded"
    run_step benchmark_folded 240 "$OUT_DIR/benchmark_folded.txt" "$PY" \
      tools/analysis_tools/benchmark.py "$CONFIG" --compare-authors \
      --device "$DEVICE" --amp --batch-size $BATCHES --warmup $WARMUP --iters $ITERS \
      --cfg-options model.decode_head.attn_impl=sdpa_folded
  fi
fi

# 4. the user's command: tools/dist_train.sh CONFIG 1
if want train; then
  short_config "$CONFIG" "$WORK/train_config.py"
  run_step train 150 "$OUT_DIR/train.log" bash tools/dist_train.sh \
    "$WORK/train_config.py" 1 --work-dir "$WORK/train"
fi

# 5. the authors' strategy: DeepSpeed ZeRO-2 fp16 (FlexibleRunner)
if want deepspeed && [ "$DEVICE" = cuda ]; then
  short_config "$DS_CONFIG" "$WORK/deepspeed_config.py"
  PORT=29501 run_step deepspeed 150 "$OUT_DIR/deepspeed.log" bash \
    tools/dist_train.sh "$WORK/deepspeed_config.py" 1 \
    --work-dir "$WORK/deepspeed"
fi

# 6. the CUDA parity test of the compiled FlexAttention, deepspeed's tests
if want tests; then
  run_step tests 120 "$OUT_DIR/tests.txt" "$PY" -m pytest -q -rs \
    -p no:cacheprovider -k 'cuda or deepspeed_strategy' \
    tests/test_models/test_sam_sdpa_attention.py \
    tests/test_configs/test_deepspeed_strategy.py
fi

# 7. the levers one at a time (ours only)
if want variants; then
  run_step variant_sdpa_folded 120 "$OUT_DIR/variant_sdpa_folded.txt" "$PY" \
    tools/analysis_tools/benchmark.py "$CONFIG" --device "$DEVICE" --amp \
    --batch-size $BATCHES --warmup $WARMUP --iters $ITERS \
    --cfg-options model.decode_head.attn_impl=sdpa_folded
  run_step variant_frozen_bf16 120 "$OUT_DIR/variant_frozen_bf16.txt" "$PY" \
    tools/analysis_tools/benchmark.py "$CONFIG" --device "$DEVICE" --amp \
    --batch-size $BATCHES --warmup $WARMUP --iters $ITERS \
    --cfg-options model.finetune_cfg.frozen_dtype=bfloat16
fi
log "done in $((SECONDS - START))s; results in $OUT_DIR"
