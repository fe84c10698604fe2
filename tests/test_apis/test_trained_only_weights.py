# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegInferencer and demo/image_demo.py load trained-only checkpoints
(the frozen base from the config's files): the same masks as the whole
trained model."""
import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from utils.tiny_refseg import REPO_ROOT

from mmrsrefseg.apis import RefSegInferencer
from mmrsrefseg.utils.checkpoint import StateDictError

TEXTS = ['the red storage tank', 'the ship on the left']


@pytest.fixture(scope='module')
def images(trained_only_run):
    paths = sorted(
        str(p) for p in Path(trained_only_run.cfg.test_dataloader.dataset.
                             data_root).rglob('*.jpg'))
    assert len(paths) >= 2
    return paths[:2]


def test_inferencer_loads_trained_only(trained_only_run, images):
    cfg = trained_only_run.cfg
    trained = RefSegInferencer(
        cfg,
        weights=trained_only_run.ckpts[4],
        device='cpu',
        show_progress=False)
    full = RefSegInferencer(
        cfg, weights=trained_only_run.full, device='cpu', show_progress=False)
    expected = torch.load(trained_only_run.full, map_location='cpu')
    state = trained.model.state_dict()
    assert state.keys() == expected['state_dict'].keys()
    for key, value in expected['state_dict'].items():
        assert torch.equal(state[key], value), key
    a, b = trained(images, TEXTS), full(images, TEXTS)
    for x, y in zip(a['masks'] + a['probabilities'],
                    b['masks'] + b['probabilities']):
        np.testing.assert_array_equal(x, y)


def test_inferencer_names_a_key_without_base(trained_only_run):
    cfg = copy.deepcopy(trained_only_run.cfg)
    cfg.model.backbone.pretrained = None
    with pytest.raises(StateDictError) as info:
        RefSegInferencer(cfg, weights=trained_only_run.ckpts[4], device='cpu')
    message = str(info.value)
    assert trained_only_run.ckpts[4] in message
    assert 'a trained-only checkpoint' in message
    assert 'missing' in message and 'backbone.model.' in message


def test_image_demo_loads_trained_only(trained_only_run, images, tmp_path):
    spec = importlib.util.spec_from_file_location(
        'image_demo_trained_only', REPO_ROOT / 'demo' / 'image_demo.py')
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    outs = []
    for name in ('trained', 'full'):
        ckpt = (
            trained_only_run.ckpts[4]
            if name == 'trained' else trained_only_run.full)
        outs.append(
            demo.main([
                images[0], TEXTS[0], trained_only_run.config_file,
                '--checkpoint', ckpt, '--device', 'cpu', '--out-file',
                str(tmp_path / f'{name}_overlay.png'), '--out-mask',
                str(tmp_path / f'{name}_mask.png')
            ]))
    np.testing.assert_array_equal(outs[0]['mask'], outs[1]['mask'])
    np.testing.assert_array_equal(outs[0]['probability'],
                                  outs[1]['probability'])
    np.testing.assert_array_equal(outs[0]['overlay'], outs[1]['overlay'])
