# RSRefSeg-b: SigLIP so400m-patch14-384 + SAM ViT-B, LoRA rank 16, on RRSIS-D
# at 1024x1024. The authors' model and schedule (KyanChen/RSRefSeg,
# configs_RSRefSeg/RSRefSeg-b.py): 1 image per GPU, AdamW lr 1e-4, weight
# decay 0.05, 5 warm-up epochs then cosine, 200 epochs; trained here with
# plain DDP and bf16 autocast (the authors' commented-out AMP block) instead
# of their DeepSpeed ZeRO-2 fp16, which is
# rsrefseg_siglip-so400m-sam-vitb_8xb1-deepspeed-fp16-200e_rrsisd-1024x1024.py
#   bash tools/dist_train.sh configs/rsrefseg_vitb.py 8
# Weights (put them in checkpoints/ or override the paths):
#   model.backbone.pretrained: an HF save_pretrained directory of
#       google/siglip-so400m-patch14-384 (tokenizer in the same directory)
#   model.decode_head.checkpoint: the official sam_vit_b_01ec64.pth or an HF
#       SamModel directory (e.g. the authors' KyanChen/sam-vit-base)
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/rsrefseg_siglip-so400m_sam-vitb.py',
    '../_base_/datasets/rrsisd.py',
    '../_base_/schedules/schedule_200e_adamw-warmcos.py',
]
