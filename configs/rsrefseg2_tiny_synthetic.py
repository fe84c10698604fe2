# The embedded default for RSRefSeg 2: a tiny RSRefSeg 2 trained on the
# synthetic RRSIS-D (native layout, written by
# tools/dataset_converters/make_synthetic_rrsisd.py) from tiny checkpoints
# (tools/misc/make_tiny_checkpoints.py; the SigLIP pretrained for image-text
# alignment by tools/misc/pretrain_tiny_clip.py). Sized so that training +
# validation finish in about 10 minutes with 2 processes on a 2-core CPU:
#   MODEL=rsrefseg2 bash tools/quickstart.sh
_base_ = [
    './_base_/default_runtime.py',
    './_base_/models/rsrefseg2_tiny.py',
    './_base_/datasets/rrsisd.py',
]
data_root = 'data/synthetic_rrsisd'
img_scale = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRefSegAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}})
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}})
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))

max_iters = 1500
val_interval = 500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=0.01,
        by_epoch=False,
        begin=100,
        end=max_iters)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=val_interval,
        max_keep_ckpts=1,
        save_best='mIoU',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='RefSegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
# Scalars go to TensorBoard too (work_dir/<timestamp>/vis_data); drop the
# second backend with --cfg-options if tensorboard is not installed.
vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend')
]
visualizer = dict(
    type='RefSegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
