# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Tiny RSRefSeg / RSRefSeg 2 configs, checkpoints, datasets and training
runs for the tests (imported as ``utils.tiny_refseg``; fixtures in
tests/conftest.py)."""
import copy
import importlib.util
from pathlib import Path

import torch
from mmengine.config import Config

import mmrsrefseg  # noqa: F401  (registers the modules)

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO_ROOT / 'configs' / 'rsrefseg_tiny_synthetic.py'
#: The real one-sample RRSIS-D excerpt, outside the repository.
REAL_ROOT = REPO_ROOT.parent / 'shared' / 'data' / 'rrsisd_sample'
REAL_IMAGE = REAL_ROOT / 'images' / 'rrsisd' / 'JPEGImages' / '11765.jpg'
REAL_TEXT = 'A airplane at the bottom'


def tiny_config(tokenizer_dir: str, data_root: str = None) -> Config:
    """The tiny synthetic config, offline and single-process.

    No pretrained files (the checkpoint holds every weight), the real CLIP
    tokenizer from ``tokenizer_dir``, the test split of ``data_root``, no
    dataloader workers and only the local vis backend.
    """
    cfg = Config.fromfile(str(TINY_CONFIG))
    cfg.model.backbone.pretrained = None
    cfg.model.backbone.tokenizer = tokenizer_dir
    cfg.model.decode_head.checkpoint = None
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = 2
        if data_root is not None:
            loader.dataset.data_root = data_root
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    return cfg


def _tool(relpath: str, name: str):
    """A script under ``tools/`` loaded as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_rsrefseg2_config(work_dir: str, data_root: str = None) -> Config:
    """A tiny RSRefSeg 2 on the tiny synthetic data, with its weight files.

    Writes, with ``tools/misc/make_tiny_checkpoints.py``, a SigLIP2
    ``save_pretrained`` directory with its Gemma tokenizer
    (``work_dir/siglip2``) and an official-format SAM 2.1 file
    (``work_dir/sam2.1_tiny.pt``) of the shapes of
    :func:`~mmrsrefseg.testing.rsrefseg2_configs.tiny_rsrefseg2_cfg`, then
    returns :func:`tiny_config` with the model of
    :func:`~mmrsrefseg.testing.rsrefseg2_configs.rsrefseg2_model_cfg`
    reading them (``init_weights``) and images resized to SAM 2.1's 128 px
    keeping the aspect ratio, as the RSRefSeg 2 configs do (the data
    preprocessor pads them to 128 x 128).
    """
    from mmrsrefseg.testing.rsrefseg2_configs import (rsrefseg2_model_cfg,
                                                      tiny_rsrefseg2_cfg)
    tools = _tool('tools/misc/make_tiny_checkpoints.py',
                  'make_tiny_checkpoints')
    work_dir = Path(work_dir)
    siglip_dir, sam2_file = work_dir / 'siglip2', work_dir / 'sam2.1_tiny.pt'
    parts = tiny_rsrefseg2_cfg(vocab_size=0)  # set to the tokenizer's below
    siglip = tools.save_siglip2(parts['siglip'], str(siglip_dir), seed=0)
    parts['siglip']['text_config']['vocab_size'] = \
        siglip.config.text_config.vocab_size
    tools.save_sam2(parts['sam2'], str(sam2_file), seed=0)
    cfg = tiny_config(str(siglip_dir), data_root)
    cfg.model = rsrefseg2_model_cfg(parts, str(siglip_dir))
    cfg.model.backbone.pretrained = str(siglip_dir)
    cfg.model.decode_head.checkpoint = str(sam2_file)
    side = parts['sam2']['image_size']
    for split in ('train', 'val', 'test'):
        for transform in cfg[f'{split}_dataloader'].dataset.pipeline:
            if transform.type == 'Resize':
                transform.update(scale=(side, side), keep_ratio=True)
    return cfg


def save_tiny_checkpoint(cfg: Config, path: str, seed: int = 0):
    """Build the (random) tiny model and save an mmengine checkpoint.

    Returns:
        RSRefSeg: The model, in eval mode.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return model


def make_synthetic(root: str,
                   num_test: int = 2,
                   img_size: int = 96,
                   num_train: int = 0):
    """Write a tiny synthetic RRSIS-D under ``root`` (a test split, and a
    train split when ``num_train`` > 0).

    Uses ``tools/dataset_converters/make_synthetic_rrsisd.py``.
    """
    module = _tool('tools/dataset_converters/make_synthetic_rrsisd.py',
                   'make_synthetic_rrsisd')
    module.main([
        str(root), '--num-train',
        str(num_train), '--num-val', '0', '--num-test',
        str(num_test), '--img-size',
        str(img_size), '--seed', '0'
    ])
    return root


def short_training(cfg: Config,
                   work_dir: str,
                   name: str,
                   max_iters: int = 4,
                   interval: int = 2) -> Config:
    """A copy of ``cfg`` that trains ``max_iters`` iterations, without
    validation, saving a checkpoint every ``interval`` iterations (all kept)
    and logging every iteration.

    ``name`` is the runner's experiment name (and names its visualiser):
    runs in one process need distinct names (mmengine shares message hubs,
    loggers and visualisers by name).
    """
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name
    cfg.visualizer.name = f'visualizer_{name}'
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10**6)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = [
        dict(
            type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1),
        dict(
            type='CosineAnnealingLR',
            eta_min=1e-5,
            by_epoch=False,
            begin=1,
            end=max_iters)
    ]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=interval,
        max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    return cfg
