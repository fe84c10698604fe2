# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/misc/pretrain_tiny_clip.py: the loss falls, weights load strictly.

For both embedded defaults: RSRefSeg's tiny CLIP and RSRefSeg 2's tiny
SigLIP (SigLIP2 format, Gemma tokenizer).
"""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmrsrefseg  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(cmd):
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


@pytest.mark.parametrize(
    'name,initial_scale',
    [
        # CLIP's own initial temperature 1 / 0.07, transformers' init too
        ('rsrefseg_tiny_synthetic.py', 1 / 0.07),
        # SigLIP's t' = log 10 (transformers initialises it at 1)
        ('rsrefseg2_tiny_synthetic.py', 10.),
    ])
def test_pretraining_lowers_the_loss_and_round_trips(tmp_path, name,
                                                     initial_scale):
    config = osp.join(REPO, 'configs', name)
    data = tmp_path / 'data'
    run([
        sys.executable,
        osp.join(REPO, 'tools/dataset_converters/make_synthetic_rrsisd.py'),
        str(data), '--num-train', '16', '--num-val', '2', '--num-test', '2',
        '--img-size', '128'
    ])
    clip_dir = tmp_path / 'clip'
    options = [
        '--cfg-options', f'model.backbone.pretrained={clip_dir}',
        f'model.decode_head.checkpoint={tmp_path / "sam.pth"}'
    ]
    run([sys.executable, 'tools/misc/make_tiny_checkpoints.py', config] +
        options)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    cfg.model.backbone.pretrained = str(clip_dir)
    before = MODELS.build(cfg.model.backbone)
    before.init_weights()

    out = run([
        sys.executable, 'tools/misc/pretrain_tiny_clip.py', config,
        str(data), '--steps', '40', '--batch-size', '8', '--lr', '3e-3'
    ] + options)
    record = json.loads((clip_dir / 'mmrsrefseg_pretraining.json').read_text())
    assert record['split'] == 'train' and record['steps'] == 40
    assert record['last_loss'] < 0.9 * record['first_loss'], record
    assert record['initial_logit_scale'] == pytest.approx(
        initial_scale, rel=1e-4)
    # a second call keeps the pretrained weights
    out = run([
        sys.executable, 'tools/misc/pretrain_tiny_clip.py', config,
        str(data), '--steps', '40'
    ] + options)
    assert 'already pretrained' in out

    after = MODELS.build(cfg.model.backbone)
    after.init_weights()  # strict: the saved directory matches the config
    changed = [
        n for n, p in after.model.named_parameters()
        if not torch.equal(p,
                           before.model.state_dict()[n])
    ]
    assert 'logit_scale' in changed and len(changed) > 10
    # rewriting random weights drops the pretraining record
    run([
        sys.executable, 'tools/misc/make_tiny_checkpoints.py', config,
        '--force'
    ] + options)
    assert not (clip_dir / 'mmrsrefseg_pretraining.json').exists()
