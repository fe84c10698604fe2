# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegInferencer and demo/image_demo.py with an RSRefSeg 2 checkpoint.

The tiny RSRefSeg 2 of the ``rsrefseg2_setup`` fixture (SigLIP2 + cascaded
prompter + SAM 2.1 at 128 px, images resized keeping the aspect ratio and
padded to 128 x 128 by the data preprocessor).
"""
import importlib.util

import cv2
import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import DATASETS, MODELS
from utils.tiny_refseg import REPO_ROOT

from mmrsrefseg.apis import RefSegInferencer


@pytest.fixture(scope='module')
def test_samples(rsrefseg2_setup):
    """The synthetic test split through the config's test pipeline."""
    dataset = DATASETS.build(rsrefseg2_setup.cfg.test_dataloader.dataset)
    return [dataset[i] for i in range(len(dataset))]


def test_parity_with_test_step(inferencer2, rsrefseg2_setup, test_samples):
    model = MODELS.build(rsrefseg2_setup.cfg.model)
    load_checkpoint(
        model, rsrefseg2_setup.ckpt, map_location='cpu', strict=True)
    model.eval()
    paths = [s['data_samples'].img_path for s in test_samples]
    texts = [s['data_samples'].metainfo['text'] for s in test_samples]
    assert len(paths) >= 4 and len(set(texts)) > 1
    single = inferencer2(paths, texts, batch_size=1)
    batched = inferencer2(paths, texts, batch_size=3)
    assert set(single) == {'masks', 'probabilities'}
    for i, (path, sample) in enumerate(zip(paths, test_samples)):
        with torch.no_grad():
            ref = model.test_step(pseudo_collate([sample]))[0]
        h, w = cv2.imread(path).shape[:2]
        mask, prob = single['masks'][i], single['probabilities'][i]
        assert mask.shape == prob.shape == (h, w)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        np.testing.assert_allclose(
            prob, ref.seg_logits.data[0].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(mask, (prob > 0.5).astype(np.uint8))
        # per-sample text padding: a prediction does not depend on its batch
        np.testing.assert_allclose(
            batched['probabilities'][i], prob, rtol=0, atol=1e-5)


def test_incomplete_checkpoint_is_refused(rsrefseg2_setup, tmp_path):
    state = torch.load(rsrefseg2_setup.ckpt, map_location='cpu')['state_dict']
    dropped = 'neck.prompt_embed'
    del state[dropped]
    partial = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': state, 'meta': {}}, partial)
    with pytest.raises(RuntimeError, match=f'missing keys.*{dropped}'):
        RefSegInferencer(rsrefseg2_setup.cfg, weights=partial, device='cpu')


def test_dense_prompt_activation_of_a_padded_image(inferencer2):
    """A 96 x 64 image: resized to 128 x 85 and padded to 128 x 128; the map
    is sigmoid(mask prompt) resampled like the mask (padding cut off)."""
    rgb = np.random.default_rng(0).integers(0, 256, (96, 64, 3), np.uint8)
    texts = ['the red ship', 'the large white storage tank on the left']
    prompts = []
    handle = inferencer2.model.neck.register_forward_hook(
        lambda m, a, out: prompts.append(out['mask_prompt'].detach()))
    try:
        result = inferencer2(
            rgb, texts, return_activations=True, return_datasamples=True)
    finally:
        handle.remove()
    assert len(inferencer2.model.neck._forward_hooks) == 0
    assert 'global_activations' not in result
    assert 'mean_local_activations' not in result
    maps = result['dense_prompt_activations']
    for i, (act, pred) in enumerate(zip(maps, result['predictions'])):
        meta = pred.metainfo
        assert tuple(meta['img_shape']) == (128, 85)
        assert tuple(meta['pad_shape']) == (128, 128)
        assert act.shape == (96, 64) and act.dtype == np.float32
        expected = F.interpolate(
            F.interpolate(
                torch.sigmoid(prompts[i]),
                size=(128, 128),
                mode='bilinear',
                align_corners=False)[..., :128, :85],
            size=(96, 64),
            mode='bilinear',
            align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(act, expected, rtol=0, atol=1e-6)
        assert 0.0 <= act.min() and act.max() <= 1.0
        # the mask is cut and resized alike: same size as the image
        assert result['masks'][i].shape == (96, 64)
    assert np.abs(maps[0] - maps[1]).max() > 1e-3


def test_activation_pictures(inferencer2, test_samples, tmp_path):
    path = test_samples[0]['data_samples'].img_path
    text = test_samples[0]['data_samples'].metainfo['text']
    result = inferencer2(
        path,
        text,
        return_activations=True,
        return_vis=True,
        out_dir=str(tmp_path))
    rgb = mmcv.imread(path, channel_order='rgb')
    h, w = rgb.shape[:2]
    picture = result['visualization'][0]
    expected = inferencer2.visualizer.render_activations(
        rgb,
        result['masks'][0],
        dict(dense_prompt_activation=result['dense_prompt_activations'][0]),
        text=text)
    np.testing.assert_array_equal(picture, expected)
    # prediction | dense-prompt activation
    assert picture.shape[1] == 2 * w and picture.shape[0] > h
    np.testing.assert_array_equal(
        picture[-h:, w:],
        inferencer2.visualizer.draw_heatmap(
            rgb, result['dense_prompt_activations'][0]))


def test_image_demo_show_activation(rsrefseg2_setup, inferencer2, test_samples,
                                    tmp_path):
    spec = importlib.util.spec_from_file_location(
        'image_demo_rsrefseg2', REPO_ROOT / 'demo' / 'image_demo.py')
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    path = test_samples[0]['data_samples'].img_path
    text = test_samples[0]['data_samples'].metainfo['text']
    out_file = tmp_path / 'act.png'
    out = demo.main([
        path, text, rsrefseg2_setup.config_file, '--checkpoint',
        rsrefseg2_setup.ckpt, '--device', 'cpu', '--out-file',
        str(out_file), '--out-mask',
        str(tmp_path / 'mask.png'), '--show-activation'
    ])
    expected = inferencer2(path, text, return_activations=True)
    assert 'global_activation' not in out
    np.testing.assert_allclose(
        out['dense_prompt_activation'],
        expected['dense_prompt_activations'][0],
        rtol=0,
        atol=1e-6)
    np.testing.assert_array_equal(out['mask'], expected['masks'][0])
    h, w = cv2.imread(path).shape[:2]
    written = cv2.imread(str(out_file))
    assert written.shape[1] == 2 * w and written.shape[0] > h
    np.testing.assert_array_equal(written[..., ::-1], out['overlay'])
