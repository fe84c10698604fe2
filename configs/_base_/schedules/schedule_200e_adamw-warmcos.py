# The authors' schedule (KyanChen/RSRefSeg, configs_RSRefSeg/RSRefSeg-b.py):
# AdamW lr 1e-4, weight decay 0.05; linear warm-up from 0.01 x lr over 5
# epochs (updated every iteration), then CosineAnnealingLR with T_max=200
# epochs from epoch 5 to 200, updated once per epoch, eta_min 0.001 x lr
# (with T_max=200 over 195 epochs the last epoch's lr is ~0.003 x lr, as
# theirs). Validation and checkpoints every 5 epochs. Mixed precision: bf16
# autocast (the authors' commented-out AMP block; their run used DeepSpeed
# fp16, see the -deepspeed-fp16 configs).
max_epochs = 200
warmup_epochs = 5
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min_ratio=0.001,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=True,
        interval=5,
        max_keep_ckpts=2,
        save_best='mIoU',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='RefSegVisualizationHook'))
# The authors' total batch: 8 GPUs x 1 image. Enable to scale the lr
# linearly when training with another total batch.
auto_scale_lr = dict(enable=False, base_batch_size=8)
