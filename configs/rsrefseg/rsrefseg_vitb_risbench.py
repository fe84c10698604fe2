# RSRefSeg-b (SigLIP so400m + SAM ViT-B with LoRA, the paper's recipe as in
# configs/rsrefseg_vitb.py) on RISBench in its native layout
# (configs/_base_/datasets/risbench.py):
#   data/risbench/img_rgb/<file>, data/risbench/mask/<file>,
#   data/risbench/output_phrase_{train,val,test}.txt
#   bash tools/dist_train.sh configs/rsrefseg/rsrefseg_vitb_risbench.py 8
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/rsrefseg_siglip-so400m_sam-vitb.py',
    '../_base_/datasets/risbench.py',
    '../_base_/schedules/schedule_200e_adamw-warmcos.py',
]
