# RSRefSeg 2: SigLIP2 so400m-patch16-512 + cascaded prompter + SAM 2.1
# Hiera-L, LoRA rank 16, on RRSIS-D at 1024x1024. The authors' model and
# recipe (KyanChen/RSRefSeg2, configs_RSRefSeg2/rrsisd_training.py): 8 images
# per GPU, AdamW lr 1e-4 (weight decay 0.05), gradient clipping 3.0, 5
# warm-up epochs, constant lr to epoch 30, cosine to epoch 300; trained here
# with plain DDP and bf16 autocast instead of their DeepSpeed ZeRO-2 bf16,
# which is rsrefseg2_..._8xb8-deepspeed-bf16-300e_rrsisd-1024x1024.py.
# The best checkpoint is chosen on val (the authors': on test).
#   bash tools/dist_train.sh configs/rsrefseg2_rrsisd.py 8
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/rsrefseg2_siglip2-so400m_sam2.1-hiera-l.py',
    '../_base_/datasets/rrsisd.py',
    '../_base_/schedules/schedule_300e_adamw-warmconstcos.py',
]
# The authors' pipelines: resized to 1024 keeping the aspect ratio (and
# padded to 1024x1024 by the data preprocessor); the datasets' images are
# square but for a few RRSIS-D quirks (800x787/801/802).
crop_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRefSegAnnotations'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}})
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}})
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
