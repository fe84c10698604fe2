# RSRefSeg-b (SigLIP so400m + SAM ViT-B with LoRA, the paper's recipe as in
# configs/rsrefseg_vitb.py) trained on RRSIS-D + RefSegRS + RISBench at once
# (configs/_base_/datasets/rrsisd_refsegrs_risbench.py: mmengine
# ConcatDataset of the three native layouts); validation and test stay on
# RRSIS-D. Test the checkpoint on the others with their own configs, e.g.
#   python tools/test.py configs/rsrefseg/rsrefseg_vitb_refsegrs.py CKPT
#   bash tools/dist_train.sh \
#       configs/rsrefseg/rsrefseg_vitb_rrsisd-refsegrs-risbench.py 8
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/rsrefseg_siglip-so400m_sam-vitb.py',
    '../_base_/datasets/rrsisd_refsegrs_risbench.py',
    '../_base_/schedules/schedule_200e_adamw-warmcos.py',
]
