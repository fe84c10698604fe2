# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Shared pytest fixtures: tiny real-format checkpoints and the real sample."""
import os.path as osp
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from utils import tiny_refseg

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO_ROOT.parent / 'shared' / 'data' / 'rrsisd_sample'


@pytest.fixture(scope='session')
def rrsisd_sample():
    """Path of the real RRSIS-D sample, or skip when it is absent."""
    if not SHARED_SAMPLE.is_dir():
        pytest.skip(f'real RRSIS-D sample not found at {SHARED_SAMPLE} '
                    '(../shared/data/rrsisd_sample beside the repo)')
    return SHARED_SAMPLE


@pytest.fixture(scope='session')
def tiny_tools():
    """The tools/misc/make_tiny_checkpoints.py module."""
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', 'misc', 'make_tiny_checkpoints.py')
    spec = importlib.util.spec_from_file_location('make_tiny_checkpoints',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def clip_tokenizer_dir(tmp_path_factory, tiny_tools):
    """A directory with the real CLIP BPE tokenizer (49,408 entries)."""
    out = tmp_path_factory.mktemp('clip_tokenizer')
    tiny_tools.build_clip_tokenizer(str(out))
    return str(out)


@pytest.fixture(scope='session')
def siglip_tokenizer_dir(tmp_path_factory, tiny_tools):
    """A real-format SigLIP tokenizer (spiece.model + tokenizer_config)."""
    out = tmp_path_factory.mktemp('siglip_tokenizer')
    tiny_tools.build_siglip_tokenizer(str(out), vocab_size=500)
    return str(out)


@pytest.fixture(scope='session')
def vis_setup(tmp_path_factory, clip_tokenizer_dir):
    """Synthetic test split (96 px), tiny config file and checkpoint.

    Returns:
        SimpleNamespace: ``cfg`` (Config), ``config_file`` (str, the dumped
        config), ``ckpt`` (str), ``data_root`` (str).
    """
    root = tmp_path_factory.mktemp('vis')
    data_root = str(tiny_refseg.make_synthetic(root / 'synthetic', num_test=1))
    cfg = tiny_refseg.tiny_config(clip_tokenizer_dir, data_root)
    # a unique visualiser name: mmengine returns an existing instance of
    # the same name and would ignore the new save_dir
    cfg.visualizer.name = f'visualizer_{root.name}'
    ckpt = str(root / 'tiny.pth')
    tiny_refseg.save_tiny_checkpoint(cfg, ckpt)
    config_file = str(root / 'tiny_config.py')
    cfg.dump(config_file)
    return SimpleNamespace(
        cfg=cfg, config_file=config_file, ckpt=ckpt, data_root=data_root)


@pytest.fixture(scope='session')
def gemma_tokenizer_dir(tmp_path_factory, tiny_tools):
    """A real-format SigLIP2 (Gemma) tokenizer directory."""
    out = tmp_path_factory.mktemp('gemma_tokenizer')
    tiny_tools.build_gemma_tokenizer(str(out))
    return str(out)


@pytest.fixture(scope='session')
def rsrefseg2_setup(tmp_path_factory):
    """A tiny RSRefSeg 2: synthetic test split, config file, checkpoint.

    The SigLIP2 directory and SAM 2.1 file are written by
    tools/misc/make_tiny_checkpoints.py and loaded by ``init_weights``; the
    checkpoint holds the whole model (as tools/train.py writes it).

    Returns:
        SimpleNamespace: ``cfg`` (Config), ``config_file`` (str, the dumped
        config), ``ckpt`` (str), ``data_root`` (str).
    """
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    root = tmp_path_factory.mktemp('rsrefseg2')
    data_root = str(tiny_refseg.make_synthetic(root / 'synthetic', num_test=2))
    cfg = tiny_refseg.tiny_rsrefseg2_config(str(root), data_root)
    cfg.visualizer.name = f'visualizer_{root.name}'
    ckpt = str(root / 'tiny_rsrefseg2.pth')
    tiny_refseg.save_tiny_checkpoint(cfg, ckpt)
    config_file = str(root / 'tiny_rsrefseg2.py')
    cfg.dump(config_file)
    return SimpleNamespace(
        cfg=cfg, config_file=config_file, ckpt=ckpt, data_root=data_root)


@pytest.fixture(scope='session')
def pretrained_setup(tmp_path_factory, clip_tokenizer_dir, tiny_tools):
    """The tiny config with its base weights in real-format files.

    A random HF ``save_pretrained`` CLIP directory and an official-format SAM
    ``.pth`` (tools/misc/make_tiny_checkpoints.py) at the config's
    ``model.backbone.pretrained`` / ``model.decode_head.checkpoint``;
    synthetic train (4 images) and test (2 images) splits.

    Returns:
        SimpleNamespace: ``cfg`` (Config), ``config_file`` (str, the dumped
        config), ``root`` (Path), ``data_root`` (str).
    """
    root = tmp_path_factory.mktemp('pretrained')
    data_root = str(
        tiny_refseg.make_synthetic(
            root / 'synthetic', num_test=2, num_train=4))
    cfg = tiny_refseg.tiny_config(clip_tokenizer_dir, data_root)
    cfg.visualizer.name = f'visualizer_{root.name}'
    cfg.model.backbone.pretrained = str(root / 'clip')
    cfg.model.decode_head.checkpoint = str(root / 'sam.pth')
    tiny_tools.save_clip(cfg.model.backbone.to_dict(), str(root / 'clip'), 0)
    tiny_tools.save_sam(cfg.model.decode_head.to_dict(), str(root / 'sam.pth'),
                        1)
    config_file = str(root / 'tiny_pretrained.py')
    cfg.dump(config_file)
    return SimpleNamespace(
        cfg=cfg, config_file=config_file, root=root, data_root=data_root)


@pytest.fixture(scope='session')
def trained_only_run(pretrained_setup):
    """Four training iterations of the tiny config with its default
    ``RefSegCheckpointHook`` (trained-only checkpoints at iterations 2, 4).

    Returns:
        SimpleNamespace: ``cfg``, ``config_file`` (as ``pretrained_setup``),
        ``work_dir`` (Path), ``ckpts`` (dict: iteration -> trained-only
        checkpoint path), ``full`` (str: an mmengine checkpoint of the whole
        trained model, ``state_dict`` + ``meta``, taken from memory after
        the run) and ``train_cfg`` (the training config).
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope('mmseg')
    work_dir = pretrained_setup.root / 'train'
    train_cfg = tiny_refseg.short_training(pretrained_setup.cfg, work_dir,
                                           'trained_only_run')
    runner = Runner.from_cfg(train_cfg)
    runner.train()
    meta = torch.load(work_dir / 'iter_4.pth', map_location='cpu')['meta']
    meta.pop('trained_only', None)  # what a full checkpoint's meta holds
    full = str(pretrained_setup.root / 'full.pth')
    torch.save(dict(state_dict=runner.model.state_dict(), meta=meta), full)
    return SimpleNamespace(
        cfg=pretrained_setup.cfg,
        config_file=pretrained_setup.config_file,
        work_dir=work_dir,
        ckpts={i: str(work_dir / f'iter_{i}.pth')
               for i in (2, 4)},
        full=full,
        train_cfg=train_cfg)
