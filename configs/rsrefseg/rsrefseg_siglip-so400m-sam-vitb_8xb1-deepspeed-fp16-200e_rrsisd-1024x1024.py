# RSRefSeg-b trained exactly as the authors did (KyanChen/RSRefSeg,
# configs_RSRefSeg/RSRefSeg-b.py): mmengine's FlexibleRunner with DeepSpeed
# ZeRO-2 and fp16 (dynamic loss scaling, model and inputs cast to half),
# AdamW lr 1e-4, weight decay 0.05, 1 image per GPU. Needs `pip install
# deepspeed` (requirements/optional.txt) on a CUDA machine; not run in this
# project's CI (CPU only), see the README.
_base_ = ['./rsrefseg_siglip-so400m-sam-vitb_8xb1-amp-200e_rrsisd-1024x1024.py']
runner_type = 'FlexibleRunner'
# DeepSpeed writes its own checkpoint directories (whole model states).
custom_hooks = [dict(type='RefSegCheckpointHook', trained_only=False)]
strategy = dict(
    type='DeepSpeedStrategy',
    fp16=dict(
        enabled=True,
        auto_cast=False,
        fp16_master_weights_and_grads=False,
        loss_scale=0,
        loss_scale_window=500,
        hysteresis=2,
        min_loss_scale=1,
        initial_scale_power=15),
    inputs_to_half=['inputs'],
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        allgather_bucket_size=2e8,
        reduce_scatter=True,
        reduce_bucket_size='auto',
        overlap_comm=True,
        contiguous_gradients=True))
optim_wrapper = dict(
    _delete_=True,
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
