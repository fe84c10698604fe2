# RSRefSeg-b (SigLIP so400m + SAM ViT-B with LoRA, the paper's recipe as in
# configs/rsrefseg_vitb.py) on RefSegRS in its native layout
# (configs/_base_/datasets/refsegrs.py):
#   data/refsegrs/images/<id>.tif, data/refsegrs/masks/<id>.tif,
#   data/refsegrs/output_phrase_{train,val,test}.txt
#   bash tools/dist_train.sh configs/rsrefseg/rsrefseg_vitb_refsegrs.py 8
_base_ = [
    'mmseg::_base_/default_runtime.py',
    '../_base_/models/rsrefseg_siglip-so400m_sam-vitb.py',
    '../_base_/datasets/refsegrs.py',
    '../_base_/schedules/schedule_200e_adamw-warmcos.py',
]
# the settings of the paper's RSRefSeg-b config on top of its bases
# (rsrefseg_siglip-so400m-sam-vitb_8xb1-amp-200e_rrsisd-1024x1024.py)
custom_imports = dict(imports=['mmrsrefseg'], allow_failed_imports=False)
model = dict(
    backbone=dict(pretrained='checkpoints/siglip-so400m-patch14-384'),
    decode_head=dict(checkpoint='checkpoints/sam_vit_b_01ec64.pth'))
train_dataloader = dict(batch_size=1)  # per GPU, as the authors
visualizer = dict(
    type='RefSegLocalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
