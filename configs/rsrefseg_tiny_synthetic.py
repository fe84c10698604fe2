# The embedded default: a tiny RSRefSeg trained from scratch on the synthetic
# RRSIS-D (native layout, written by
# tools/dataset_converters/make_synthetic_rrsisd.py) with tiny random
# checkpoints (tools/misc/make_tiny_checkpoints.py). Sized so that training +
# validation finish in about 10 minutes with 2 processes on a 2-core CPU:
#   bash tools/quickstart.sh
_base_ = [
    './_base_/schedules/schedule_1500it_adamw-warmcos_tiny.py',
    './_base_/models/rsrefseg_tiny.py',
    './_base_/datasets/synthetic_rrsisd.py',
]
