# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Tiny RSRefSeg checkpoints and datasets for the inference tests.

Loaded by path (``importlib``) from the conftest files of ``test_apis`` and
``test_visualization``.
"""
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


def make_synthetic(root: str, num_test: int = 2, img_size: int = 96):
    """Write a tiny synthetic RRSIS-D (test split only) under ``root``.

    Uses ``tools/dataset_converters/make_synthetic_rrsisd.py``.
    """
    path = REPO_ROOT / 'tools' / 'dataset_converters' / \
        'make_synthetic_rrsisd.py'
    spec = importlib.util.spec_from_file_location('make_synthetic_rrsisd',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([
        str(root), '--num-train', '0', '--num-val', '0', '--num-test',
        str(num_test), '--img-size',
        str(img_size), '--seed', '0'
    ])
    return root
