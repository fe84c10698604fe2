# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Activation maps: resampling, recording from the model, drawing."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.runner.checkpoint import load_checkpoint
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS, VISUALIZERS
from mmseg.structures import SegDataSample

from mmrsrefseg.models.necks import TextFilterNeck
from mmrsrefseg.visualization import ActivationRecorder, activation_to_image

_names = itertools.count()
JET_0 = (0, 0, 128)  # RGB of cv2.COLORMAP_JET at level 0
JET_255 = (128, 0, 0)  # and at level 255


def make_visualizer(**kwargs):
    return VISUALIZERS.build(
        dict(
            type='RefSegLocalVisualizer',
            name=f'activation_vis_test_{next(_names)}',
            **kwargs))


# ------------------------------------------------------------ resampling
def test_activation_to_image_hand_values():
    # columns 0 | 1: bilinear 2 -> 4 (align_corners=False) samples the
    # source at x = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    act = torch.tensor([[0., 1.], [0., 1.]])
    meta = dict(img_shape=(4, 4), ori_shape=(4, 4))
    out = activation_to_image(act, meta)
    assert out.shape == (4, 4) and out.dtype == torch.float32
    expected_row = torch.tensor([0., 0.25, 0.75, 1.])
    torch.testing.assert_close(out, expected_row.expand(4, 4))
    # right / bottom padding of 2 px in a 4 x 4 input: the image is the
    # top-left 2 x 2 corner of the upsampled map, then resized to (2, 2)
    meta = dict(
        img_shape=(2, 2),
        pad_shape=(4, 4),
        padding_size=[0, 2, 0, 2],
        ori_shape=(2, 2))
    out = activation_to_image(act, meta)
    torch.testing.assert_close(out, torch.tensor([[0., 0.25], [0., 0.25]]))
    # a constant map stays constant at any size
    out = activation_to_image(
        torch.full((3, 5), 0.3), dict(img_shape=(64, 64), ori_shape=(7, 11)))
    assert out.shape == (7, 11)
    torch.testing.assert_close(out, torch.full((7, 11), 0.3))


def test_activation_to_image_errors():
    with pytest.raises(ValueError, match='(h, w)'):
        activation_to_image(torch.zeros(1, 2, 2), dict(img_shape=(2, 2)))
    with pytest.raises(KeyError, match='ori_shape'):
        activation_to_image(torch.zeros(2, 2), dict(img_shape=(2, 2)))


# ------------------------------------------------------------- recording
@pytest.fixture(scope='module')
def model_and_batch(vis_setup):
    model = MODELS.build(vis_setup.cfg.model)
    load_checkpoint(model, vis_setup.ckpt, map_location='cpu', strict=True)
    model.eval()
    dataset = DATASETS.build(vis_setup.cfg.test_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(2)])
    return model, batch


def test_recorder_equals_extract_feat(model_and_batch):
    model, batch = model_and_batch
    with torch.no_grad():
        plain = model.test_step(batch)
        assert len(model.neck._forward_hooks) == 0
        with ActivationRecorder(model) as recorder:
            assert len(model.neck._forward_hooks) == 1
            preds = model.test_step(batch)
            assert recorder.num_pending == 2
            recorder.attach(preds)
            assert recorder.num_pending == 0
        assert len(model.neck._forward_hooks) == 0
        # the same forward pass through the segmentor's public method
        data = model.data_preprocessor(batch, False)
        metas = [s.metainfo for s in data['data_samples']]
        feats = model.extract_feat(data['inputs'], metas)
    # recording changes no prediction
    for a, b in zip(plain, preds):
        torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)
    local = feats['local_activation']  # (B, T, h, w), 0 at padding tokens
    real_tokens = (local > 0).flatten(2).any(-1)  # (B, T)
    assert (real_tokens.sum(1) < local.shape[1]).any()  # padded batch
    mean_local = local.sum(1) / real_tokens.sum(1)[:, None, None]
    global_act = torch.sigmoid(feats['global_logits'])
    for i, pred in enumerate(preds):
        meta = pred.metainfo
        ori_h, ori_w = meta['ori_shape']
        for key, grid in (('global_activation', global_act[i]),
                          ('mean_local_activation', mean_local[i])):
            # grid -> model input (256 x 256, no padding) -> image, as the
            # mask logits
            expected = F.interpolate(
                F.interpolate(
                    grid[None, None],
                    size=data['inputs'].shape[-2:],
                    mode='bilinear',
                    align_corners=False),
                size=(ori_h, ori_w),
                mode='bilinear',
                align_corners=False)[0]
            got = pred.get(key).data
            assert got.shape == (1, ori_h, ori_w)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
            assert 0.0 <= got.min() and got.max() <= 1.0
    # the two maps differ (not one map twice)
    assert not torch.allclose(preds[0].global_activation.data,
                              preds[0].mean_local_activation.data)


def test_recorder_count_mismatch_and_inactive(model_and_batch):
    model, batch = model_and_batch
    recorder = ActivationRecorder(model)
    with pytest.raises(RuntimeError, match='not active'):
        recorder.attach([])
    with torch.no_grad(), recorder:
        preds = model.test_step(batch)
        with pytest.raises(RuntimeError, match="mode='whole'"):
            recorder.attach(preds[:1])
        # cleared after the error: the next batch attaches cleanly
        preds = model.test_step(batch)
        recorder.attach(preds)
    assert 'global_activation' in preds[1]


class _DictNeck(nn.Module):
    """A neck that declares TextFilterNeck's maps but lacks an output."""
    activation_fields = TextFilterNeck.activation_fields
    activation_maps = TextFilterNeck.activation_maps

    def forward(self, x):
        return {'global_logits': x}


def test_recorder_errors():
    with pytest.raises(TypeError, match='neck'):
        ActivationRecorder(nn.Linear(2, 2))
    holder = nn.Module()
    holder.neck = _DictNeck()
    with ActivationRecorder(holder):
        with pytest.raises(KeyError, match='mean_local_activation'):
            holder.neck(torch.zeros(1, 2, 2))


class _PlainNeck(nn.Module):
    """A neck that declares no activation maps."""

    def forward(self, x):
        return {'x': x}


class _UntitledNeck(_PlainNeck):
    """A neck that declares a map without a title."""
    activation_fields = ('my_map', )

    def activation_maps(self, outputs):
        return {'my_map': outputs['x']}


def test_recorder_needs_declared_titled_maps():
    holder = nn.Module()
    holder.neck = _PlainNeck()
    with pytest.raises(TypeError, match='_PlainNeck declares no activation'):
        ActivationRecorder(holder)
    holder.neck = _UntitledNeck()
    with pytest.raises(KeyError, match=r"\['my_map'\] that have no title"):
        ActivationRecorder(holder)


# ------------------------------------------------- recording: RSRefSeg 2
@pytest.fixture(scope='module')
def rsrefseg2_model_and_batch(rsrefseg2_setup):
    cfg = rsrefseg2_setup.cfg
    model = MODELS.build(cfg.model)
    load_checkpoint(
        model, rsrefseg2_setup.ckpt, map_location='cpu', strict=True)
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(2)])
    return model, batch


def test_rsrefseg2_recorder_records_the_dense_prompt(
        rsrefseg2_model_and_batch):
    """RSRefSeg 2's map: sigmoid(mask prompt), SAM 2.1's mask-input grid
    resampled to the image as the mask logits are."""
    model, batch = rsrefseg2_model_and_batch
    recorder = ActivationRecorder(model)
    assert recorder.fields == ('dense_prompt_activation', )
    with torch.no_grad():
        plain = model.test_step(batch)
        with recorder:
            preds = model.test_step(batch)
            recorder.attach(preds)
        assert len(model.neck._forward_hooks) == 0
        data = model.data_preprocessor(batch, False)
        metas = [s.metainfo for s in data['data_samples']]
        feats = model.extract_feat(data['inputs'], metas)
    prompt = feats['mask_prompt']  # (B, 1, S/4, S/4) logits
    assert prompt.shape == (2, 1, 32, 32)
    in_h, in_w = data['inputs'].shape[-2:]
    assert (in_h, in_w) == (128, 128)
    maps = []
    for i, (a, pred) in enumerate(zip(plain, preds)):
        torch.testing.assert_close(a.seg_logits.data, pred.seg_logits.data)
        assert 'global_activation' not in pred
        assert 'mean_local_activation' not in pred
        meta = pred.metainfo
        h, w = meta['img_shape']
        expected = F.interpolate(
            F.interpolate(
                torch.sigmoid(prompt[i:i + 1]),
                size=(in_h, in_w),
                mode='bilinear',
                align_corners=False)[..., :h, :w],
            size=meta['ori_shape'],
            mode='bilinear',
            align_corners=False)[0]
        got = pred.dense_prompt_activation.data
        assert got.shape == (1, *meta['ori_shape'])
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        assert 0.0 <= got.min() and got.max() <= 1.0
        assert got.max() - got.min() > 1e-2  # a map, not a constant
        maps.append(got)
    # two expressions, two maps
    assert (maps[0] - maps[1]).abs().max() > 1e-3


# --------------------------------------------------------------- drawing
def test_colorize_and_heatmap_pixels():
    vis = make_visualizer()
    heat = np.array([[0., 1.], [-3., 7.]], np.float32)  # clipped to [0, 1]
    colours = vis.colorize(heat)
    assert colours.dtype == np.uint8 and colours.shape == (2, 2, 3)
    assert (colours[:, 0] == JET_0).all() and (colours[:, 1] == JET_255).all()
    image = np.full((2, 2, 3), 100, np.uint8)
    out = vis.draw_heatmap(image, heat)  # heatmap_alpha 0.6
    expected_0 = np.round(0.4 * 100 + 0.6 * np.array(JET_0))
    expected_1 = np.round(0.4 * 100 + 0.6 * np.array(JET_255))
    assert (out[:, 0] == expected_0).all() and (out[:, 1] == expected_1).all()
    out = vis.draw_heatmap(image, torch.ones(1, 2, 2), opacity=1.0)
    assert (out == JET_255).all()
    # another colour map by name
    assert (make_visualizer(colormap='viridis').colorize(heat[:1])
            != colours[:1]).any()


def test_heatmap_errors():
    vis = make_visualizer()
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match='image size'):
        vis.draw_heatmap(image, np.zeros((4, 5)))
    with pytest.raises(ValueError, match='NaN'):
        vis.draw_heatmap(image, np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match='opacity'):
        vis.draw_heatmap(image, np.zeros((4, 4)), opacity=-0.1)
    with pytest.raises(ValueError, match='colour map'):
        make_visualizer(colormap='rainbowish')
    with pytest.raises(ValueError, match='opacity'):
        make_visualizer(heatmap_alpha=1.5)


def _header_has(header, colour):
    return (header == colour).all(axis=-1).any()


def test_render_activations_layout():
    vis = make_visualizer()
    h, w = 60, 80
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 20:50] = 1
    yy, xx = np.mgrid[0:h, 0:w]
    global_act = (xx / (w - 1)).astype(np.float32)
    local_act = (yy / (h - 1)).astype(np.float32)
    out = vis.render_activations(
        image,
        mask,
        dict(global_activation=global_act, mean_local_activation=local_act),
        text='the red car',
        info='x')
    assert out.shape[1] == 3 * w and out.shape[0] > h
    body, header = out[-h:], out[:-h]
    np.testing.assert_array_equal(body[:, :w], vis.draw_overlay(image, mask))
    np.testing.assert_array_equal(body[:, w:2 * w],
                                  vis.draw_heatmap(image, global_act))
    np.testing.assert_array_equal(body[:, 2 * w:],
                                  vis.draw_heatmap(image, local_act))
    # colour bars (0 -> 1) under the two activation titles only
    for k, has_bar in enumerate((False, True, True)):
        part = header[:, k * w:(k + 1) * w]
        assert _header_has(part, JET_0) == has_bar
        assert _header_has(part, JET_255) == has_bar
        assert (part >= 230).all(axis=-1).any()  # a white title


def test_render_datasample_with_activations():
    vis = make_visualizer()
    h, w = 40, 50
    image = np.full((h, w, 3), 90, np.uint8)
    s = SegDataSample(metainfo=dict(text='a ship', ref_id=3))
    gt = np.zeros((h, w), np.int64)
    gt[5:20, 5:20] = 1
    s.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
    s.pred_sem_seg = PixelData(data=torch.from_numpy(gt)[None].float())
    s.global_activation = PixelData(data=torch.full((1, h, w), 0.))
    s.mean_local_activation = PixelData(data=torch.full((1, h, w), 1.))
    out = vis.render_datasample(image, s)
    assert out.shape[1] == 5 * w
    body = out[-h:]
    assert (body[:, 3 * w:4 * w] == np.round(0.4 * 90 +
                                             0.6 * np.array(JET_0))).all()
    assert (body[:, 4 * w:] == np.round(0.4 * 90 +
                                        0.6 * np.array(JET_255))).all()
    # switched off: the three usual panels
    assert vis.render_datasample(
        image, s, draw_activation=False).shape[1] == 3 * w
    s.global_activation = PixelData(data=torch.zeros(1, h, w + 1))
    with pytest.raises(ValueError, match='global_activation'):
        vis.render_datasample(image, s)


def test_render_datasample_with_dense_prompt_activation():
    vis = make_visualizer()
    h, w = 40, 50
    image = np.full((h, w, 3), 90, np.uint8)
    s = SegDataSample(metainfo=dict(text='a ship'))
    gt = torch.zeros(1, h, w, dtype=torch.long)
    s.gt_sem_seg = PixelData(data=gt)
    s.pred_sem_seg = PixelData(data=gt.float())
    s.dense_prompt_activation = PixelData(data=torch.full((1, h, w), 1.))
    out = vis.render_datasample(image, s)
    # image | ground truth | prediction | dense-prompt activation
    assert out.shape[1] == 4 * w
    body, header = out[-h:], out[:-h]
    assert (body[:, 3 * w:] == np.round(0.4 * 90 +
                                        0.6 * np.array(JET_255))).all()
    # one colour bar, under the last title
    for k in range(4):
        part = header[:, k * w:(k + 1) * w]
        assert _header_has(part, JET_0) == (k == 3)


def test_render_activations_dense_prompt():
    vis = make_visualizer()
    h, w = 30, 40
    image = np.full((h, w, 3), 60, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    dense = np.full((h, w), 0., np.float32)
    out = vis.render_activations(image, mask,
                                 dict(dense_prompt_activation=dense))
    assert out.shape[1] == 2 * w
    np.testing.assert_array_equal(out[-h:, w:], vis.draw_heatmap(image, dense))
    with pytest.raises(ValueError, match='some of'):
        vis.render_activations(image, mask, {})
    with pytest.raises(ValueError, match='my_map'):
        vis.render_activations(image, mask, dict(my_map=dense))
