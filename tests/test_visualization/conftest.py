# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Fixtures of the visualisation tests: a tiny dataset and checkpoint."""
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from mmengine.registry import init_default_scope


def _load_tiny_refseg():
    """tests/test_apis/tiny_refseg.py, loaded by path."""
    path = Path(__file__).parents[1] / 'test_apis' / 'tiny_refseg.py'
    spec = importlib.util.spec_from_file_location('tiny_refseg_vis', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny_refseg = _load_tiny_refseg()


@pytest.fixture(autouse=True)
def _mmseg_scope():
    """Resolve registry names in the mmseg scope, as configs do."""
    init_default_scope('mmseg')


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
