# RSRefSeg-b: SigLIP so400m-patch14-384 + SAM ViT-B with LoRA (rank 16) on
# RRSIS-D at 1024x1024; 8 GPUs x 4 images, AdamW 1e-4, 200 epochs, bf16.
#   bash tools/dist_train.sh configs/rsrefseg_vitb.py 8
# Weights (put them in checkpoints/ or override the paths):
#   model.backbone.pretrained: an HF directory or hub id of
#       google/siglip-so400m-patch14-384 (tokenizer in the same directory)
#   model.decode_head.checkpoint: the official sam_vit_b_01ec64.pth
_base_ = [
    'mmseg::_base_/default_runtime.py',
    '../_base_/models/rsrefseg_siglip-so400m_sam-vitb.py',
    '../_base_/datasets/rrsisd.py',
    '../_base_/schedules/schedule_200e_adamw-warmcos.py',
]
custom_imports = dict(imports=['mmrsrefseg'], allow_failed_imports=False)
model = dict(
    backbone=dict(pretrained='checkpoints/siglip-so400m-patch14-384'),
    decode_head=dict(checkpoint='checkpoints/sam_vit_b_01ec64.pth'))
visualizer = dict(
    type='RefSegLocalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
