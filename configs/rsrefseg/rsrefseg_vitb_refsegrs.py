# RSRefSeg-b (SigLIP so400m + SAM ViT-B with LoRA, the paper's recipe as in
# configs/rsrefseg_vitb.py) on RefSegRS in its native layout
# (configs/_base_/datasets/refsegrs.py):
#   data/refsegrs/images/<id>.tif, data/refsegrs/masks/<id>.tif,
#   data/refsegrs/output_phrase_{train,val,test}.txt
#   bash tools/dist_train.sh configs/rsrefseg/rsrefseg_vitb_refsegrs.py 8
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/rsrefseg_siglip-so400m_sam-vitb.py',
    '../_base_/datasets/refsegrs.py',
    '../_base_/schedules/schedule_200e_adamw-warmcos.py',
]
