# The embedded default for RSRefSeg 2: a tiny RSRefSeg 2 trained on the
# synthetic RRSIS-D (native layout, written by
# tools/dataset_converters/make_synthetic_rrsisd.py) from tiny checkpoints
# (tools/misc/make_tiny_checkpoints.py; the SigLIP pretrained for image-text
# alignment by tools/misc/pretrain_tiny_clip.py). Sized so that training +
# validation finish in about 10 minutes with 2 processes on a 2-core CPU:
#   MODEL=rsrefseg2 bash tools/quickstart.sh
_base_ = [
    './_base_/schedules/schedule_1500it_adamw-warmcos_tiny.py',
    './_base_/models/rsrefseg2_tiny.py',
    './_base_/datasets/synthetic_rrsisd.py',
]
