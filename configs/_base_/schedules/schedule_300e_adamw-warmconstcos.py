# The RSRefSeg 2 authors' schedule (KyanChen/RSRefSeg2,
# configs_RSRefSeg2/rrsisd_training.py): AdamW lr 1e-4, weight decay 0.05
# (their DeepSpeed optimiser), gradient clipping 3.0; linear warm-up from
# 0.01 x lr over 5 epochs (updated every iteration), the lr constant until
# epoch 30 (0.1 x max_epochs), then CosineAnnealingLR with T_max = 1.3 x
# max_epochs = 390 epochs from epoch 30 to 300, stepped per epoch, eta_min
# 0.01 x lr (so the last epoch's lr is about 0.25 x lr, as theirs).
# Validation and checkpoints every 10 epochs. Mixed precision: bf16 autocast
# under plain DDP (their DeepSpeed ZeRO-2 bf16 is the -deepspeed-bf16
# configs).
max_epochs = 300
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=3.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=int(1.3 * max_epochs),
        by_epoch=True,
        begin=int(0.1 * max_epochs),
        end=max_epochs,
        eta_min_ratio=0.01)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # the authors keep the 5 last checkpoints and the best on *test* (their
    # val loader is the test split); here the best is chosen on val
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=True,
        interval=10,
        max_keep_ckpts=5,
        save_last=True,
        save_best='mIoU',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='RefSegVisualizationHook'))
# The authors' total batch: 8 GPUs x 8 images (the GPU count is ours; their
# code does not state it). Enable to scale the lr linearly with another one.
auto_scale_lr = dict(enable=False, base_batch_size=64)
