# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/misc/pretrain_tiny_clip.py: the loss falls, weights load strictly."""
import json
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmrsrefseg  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'rsrefseg_tiny_synthetic.py')


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


def test_pretraining_lowers_the_loss_and_round_trips(tmp_path):
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
    run([sys.executable, 'tools/misc/make_tiny_checkpoints.py', CONFIG] +
        options)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.pretrained = str(clip_dir)
    before = MODELS.build(cfg.model.backbone)
    before.init_weights()

    out = run([
        sys.executable, 'tools/misc/pretrain_tiny_clip.py', CONFIG,
        str(data), '--steps', '40', '--batch-size', '8', '--lr', '3e-3'
    ] + options)
    record = json.loads((clip_dir / 'mmrsrefseg_pretraining.json').read_text())
    assert record['split'] == 'train' and record['steps'] == 40
    assert record['last_loss'] < 0.9 * record['first_loss'], record
    # a second call keeps the pretrained weights
    out = run([
        sys.executable, 'tools/misc/pretrain_tiny_clip.py', CONFIG,
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
        sys.executable, 'tools/misc/make_tiny_checkpoints.py', CONFIG,
        '--force'
    ] + options)
    assert not (clip_dir / 'mmrsrefseg_pretraining.json').exists()
