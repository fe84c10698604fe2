# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Distributed launch helpers for machines with and without CUDA."""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['setup_distributed']


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` for the chosen launcher, also on CPU-only machines.

    With CUDA nothing changes: mmengine initialises NCCL (or the configured
    backend) itself. Without CUDA, mmengine 0.10.7's ``init_dist`` calls
    ``torch.cuda.set_device`` and fails, and DDP rejects
    ``device_ids=[rank]`` for CPU modules. So
    this initialises the ``gloo`` process group from the torchrun/slurm
    environment *before* ``Runner.from_cfg`` (mmengine then skips its own
    initialisation) and wraps the model in ``MMDistributedDataParallel``
    with ``device_ids=None``. The config needs no edit.

    Args:
        cfg (Config): The run config (modified in place).
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Raises:
        KeyError: If a CPU ``pytorch`` launch lacks ``RANK``/``WORLD_SIZE``.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ['SLURM_LOCALID'])
        os.environ.setdefault('MASTER_PORT', '29500')
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if key not in os.environ:
            raise KeyError(f'{key} is not set; launch with '
                           'tools/dist_train.sh (torchrun) or slurm')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', device_ids=None)
    print_log(
        f'No CUDA: distributed run on CPU with gloo, rank '
        f'{dist.get_rank()} of {dist.get_world_size()}',
        logger='current')
