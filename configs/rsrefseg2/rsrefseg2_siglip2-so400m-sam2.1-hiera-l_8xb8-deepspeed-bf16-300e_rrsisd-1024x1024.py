# RSRefSeg 2 trained exactly as the authors did (KyanChen/RSRefSeg2,
# configs_RSRefSeg2/rrsisd_training.py): mmengine's FlexibleRunner with
# DeepSpeed ZeRO-2 in bf16 (model and inputs cast to bf16), gradient clipping
# 3.0, AdamW with weight decay 0.05. Needs deepspeed (requirements/
# optional.txt) on a CUDA machine.
_base_ = ['./rsrefseg2_siglip2-so400m-sam2.1-hiera-l_8xb8-amp-300e_rrsisd-1024x1024.py']  # noqa: E501
runner_type = 'FlexibleRunner'
# DeepSpeed writes its own checkpoint directories (whole model states).
custom_hooks = [dict(type='RefSegCheckpointHook', trained_only=False)]
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    gradient_clipping=3.0,
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
