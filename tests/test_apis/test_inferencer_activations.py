# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Activation maps from RefSegInferencer and demo/image_demo.py."""
import importlib.util
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
from mmseg.registry import DATASETS
from utils.tiny_refseg import REPO_ROOT, TINY_CONFIG

ACT_KEYS = ('global_activations', 'mean_local_activations')


@pytest.fixture(scope='module')
def image_and_texts(tiny_setup):
    """An image of the synthetic test split and its expressions."""
    dataset = DATASETS.build(tiny_setup.cfg.test_dataloader.dataset)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    image = infos[0]['img_path']
    texts = [i['text'] for i in infos if i['img_path'] == image]
    assert len(texts) >= 2
    return image, texts


def test_activations_returned(inferencer, image_and_texts):
    image, texts = image_and_texts
    plain = inferencer(image, texts)
    assert not set(ACT_KEYS) & set(plain)
    result = inferencer(image, texts, return_activations=True)
    assert len(inferencer.model.neck._forward_hooks) == 0  # removed again
    h, w = cv2.imread(image).shape[:2]
    for key in ACT_KEYS:
        assert len(result[key]) == len(texts)
        for act in result[key]:
            assert act.shape == (h, w) and act.dtype == np.float32
            assert 0.0 <= act.min() and act.max() <= 1.0
    # the expression changes the global activation
    assert np.abs(result['global_activations'][0] -
                  result['global_activations'][1]).max() > 1e-3
    # recording changes no prediction
    for a, b in zip(plain['probabilities'], result['probabilities']):
        np.testing.assert_array_equal(a, b)
    # batching does not change the maps (padding tokens are excluded)
    batched = inferencer(
        image, texts, batch_size=len(texts), return_activations=True)
    for key in ACT_KEYS:
        for a, b in zip(result[key], batched[key]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_activation_pictures(inferencer, image_and_texts, tmp_path):
    image, texts = image_and_texts
    result = inferencer(
        image,
        texts[0],
        return_activations=True,
        return_vis=True,
        out_dir=str(tmp_path))
    rgb = mmcv.imread(image, channel_order='rgb')
    h, w = rgb.shape[:2]
    picture = result['visualization'][0]
    expected = inferencer.visualizer.render_activations(
        rgb,
        result['masks'][0],
        dict(
            global_activation=result['global_activations'][0],
            mean_local_activation=result['mean_local_activations'][0]),
        text=texts[0])
    np.testing.assert_array_equal(picture, expected)
    assert picture.shape[1] == 3 * w and picture.shape[0] > h
    stem = osp.splitext(osp.basename(image))[0]
    written = cv2.imread(str(tmp_path / 'vis' / f'{stem}_0.png'))
    np.testing.assert_array_equal(written[..., ::-1], picture)


@pytest.fixture(scope='module')
def demo():
    path = REPO_ROOT / 'demo' / 'image_demo.py'
    spec = importlib.util.spec_from_file_location('image_demo_act', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_demo_show_activation(demo, tiny_setup, inferencer,
                                    image_and_texts, tmp_path):
    image, texts = image_and_texts
    out_file = tmp_path / 'act.png'
    out = demo.main([
        image, texts[0],
        str(TINY_CONFIG), '--checkpoint', tiny_setup.ckpt, '--device', 'cpu',
        '--out-file',
        str(out_file), '--out-mask',
        str(tmp_path / 'mask.png'), '--show-activation', '--cfg-options',
        f'model.backbone.tokenizer={tiny_setup.tokenizer}'
    ])
    expected = inferencer(image, texts[0], return_activations=True)
    for key in ('global_activation', 'mean_local_activation'):
        np.testing.assert_allclose(
            out[key], expected[key + 's'][0], rtol=0, atol=1e-6)
    h, w = cv2.imread(image).shape[:2]
    written = cv2.imread(str(out_file))
    assert written.shape[1] == 3 * w and written.shape[0] > h
    np.testing.assert_array_equal(written[..., ::-1], out['overlay'])
