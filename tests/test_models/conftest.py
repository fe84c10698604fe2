# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Fixtures shared by the model tests."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.utils import register_all_modules

from mmrsrefseg.testing import tiny_siglip_rsrefseg_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def model_cfgs(clip_tokenizer_dir, siglip_tokenizer_dir):
    """(model config, image size) of two tiny RSRefSeg models: the tiny CLIP
    config's model (``clip``, 256 px) and a tiny SigLIP paper-style model
    (``siglip``, 128 px), both without weight files."""
    from transformers import AutoTokenizer
    register_all_modules(init_default_scope=True)
    clip = Config.fromfile(
        osp.join(REPO, 'configs/_base_/models/rsrefseg_tiny.py')).model
    clip.backbone.update(
        pretrained=None, tokenizer=clip_tokenizer_dir, clip_resize='bilinear')
    clip.decode_head.checkpoint = None
    vocab = len(AutoTokenizer.from_pretrained(siglip_tokenizer_dir))
    siglip = Config(
        dict(
            model=tiny_siglip_rsrefseg_cfg(siglip_tokenizer_dir, vocab))).model
    siglip.test_cfg = dict(mode='whole')
    return dict(clip=(clip, 256), siglip=(siglip, 128))
