# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Fixtures of the inference tests: a tiny dataset and checkpoint."""
from types import SimpleNamespace

import pytest
from mmengine.registry import init_default_scope
from utils.tiny_refseg import make_synthetic, save_tiny_checkpoint, tiny_config


@pytest.fixture(autouse=True)
def _mmseg_scope():
    """Resolve registry names in the mmseg scope, as configs do."""
    init_default_scope('mmseg')


@pytest.fixture(scope='session')
def tiny_setup(tmp_path_factory, clip_tokenizer_dir):
    """Synthetic test split (96 px), tiny config and random checkpoint.

    Returns:
        SimpleNamespace: ``cfg`` (Config), ``ckpt`` (str), ``data_root``
        (str), ``tokenizer`` (str).
    """
    root = tmp_path_factory.mktemp('apis')
    data_root = str(make_synthetic(root / 'synthetic', num_test=2))
    cfg = tiny_config(clip_tokenizer_dir, data_root)
    ckpt = str(root / 'tiny.pth')
    save_tiny_checkpoint(cfg, ckpt)
    return SimpleNamespace(
        cfg=cfg, ckpt=ckpt, data_root=data_root, tokenizer=clip_tokenizer_dir)


@pytest.fixture(scope='session')
def inferencer(tiny_setup):
    """A CPU ``RefSegInferencer`` of the tiny checkpoint."""
    from mmrsrefseg.apis import RefSegInferencer
    init_default_scope('mmseg')
    return RefSegInferencer(
        tiny_setup.cfg,
        weights=tiny_setup.ckpt,
        device='cpu',
        show_progress=False)


@pytest.fixture(scope='session')
def inferencer2(rsrefseg2_setup):
    """A CPU ``RefSegInferencer`` of the tiny RSRefSeg 2 checkpoint."""
    from mmrsrefseg.apis import RefSegInferencer
    init_default_scope('mmseg')
    return RefSegInferencer(
        rsrefseg2_setup.config_file,
        weights=rsrefseg2_setup.ckpt,
        device='cpu',
        show_progress=False)
