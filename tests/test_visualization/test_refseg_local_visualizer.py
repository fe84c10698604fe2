# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegLocalVisualizer: overlay pixels, side-by-side layout, IoU."""
import itertools
import json

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample

from mmrsrefseg.evaluation import RefSegIoUMetric
from mmrsrefseg.visualization import RefSegLocalVisualizer
from mmrsrefseg.visualization.captions import (MAX_LINES, PLACEHOLDER,
                                               printable, text_style, wrap)

_names = itertools.count()


def make_visualizer(**kwargs):
    """A fresh instance (mmengine caches visualisers by name)."""
    return VISUALIZERS.build(
        dict(
            type='RefSegLocalVisualizer',
            name=f'refseg_vis_test_{next(_names)}',
            **kwargs))


def random_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(
        0, 256, (h, w, 3), dtype=np.uint8)


def rect(hw, y1, y2, x1, x2):
    mask = np.zeros(hw, np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def test_registered():
    assert isinstance(make_visualizer(), RefSegLocalVisualizer)


def test_overlay_pixels():
    vis = make_visualizer()
    image = random_image(60, 90)
    before = image.copy()
    mask = rect((60, 90), 20, 40, 30, 70)
    color = (10, 200, 30)
    out = vis.draw_overlay(image, mask, color=color, opacity=0.25)
    np.testing.assert_array_equal(image, before)  # input untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    # well inside: round(0.75 * pixel + 0.25 * color)
    inner = image[22:38, 32:68].astype(np.float64)
    expected = np.round(0.75 * inner + 0.25 * np.array(color))
    np.testing.assert_array_equal(out[22:38, 32:68], expected)
    # the contour (1 px for a 90 px image) on the mask's border pixels
    assert (out[20, 30:70] == color).all()
    assert (out[20:40, 69] == color).all()
    # outside, away from the contour: unchanged
    outside = np.ones((60, 90), bool)
    outside[18:42, 28:72] = False
    np.testing.assert_array_equal(out[outside], image[outside])


def test_overlay_without_contour_and_full_opacity():
    vis = make_visualizer()
    image = random_image(30, 30)
    mask = rect((30, 30), 5, 25, 5, 25)
    out = vis.draw_overlay(
        image,
        torch.from_numpy(mask)[None],
        color=(1, 2, 3),
        opacity=1.0,
        contour=False)
    assert (out[mask == 1] == (1, 2, 3)).all()
    np.testing.assert_array_equal(out[mask == 0], image[mask == 0])


def test_no_contour_along_image_border():
    vis = make_visualizer()
    image = np.full((90, 90, 3), 100, np.uint8)
    mask = rect((90, 90), 0, 90, 0, 45)  # cut by three image borders
    out = vis.draw_overlay(image, mask, color=(200, 0, 0), opacity=0.5)
    # 0.5 * 100 + 0.5 * (200, 0, 0) up to the image border, rows 0 and 89
    # included; the contour only on the one real edge, column 44
    assert (out[:, :44] == (150, 50, 50)).all()
    assert (out[:, 44] == (200, 0, 0)).all()
    np.testing.assert_array_equal(out[:, 46:], image[:, 46:])


def test_banner_text():
    vis = make_visualizer()
    image = np.full((400, 400, 3), 120, np.uint8)
    mask = np.zeros((400, 400), np.uint8)
    plain = vis.draw_overlay(image, mask)
    np.testing.assert_array_equal(plain, image)
    text = ('the white storage tank on the left of the large ship at the '
            'top, next to the small green vehicle')
    out = vis.draw_overlay(image, mask, text=text)
    changed = np.nonzero((out != image).any(axis=(1, 2)))[0]
    # a banner at the top, wrapped over two lines, the rest unchanged
    assert changed.min() == 0 and 20 < changed.max() < 120
    banner = out[:changed.max() + 1]
    assert (banner == 48).all(axis=2).sum() > 0.5 * banner[..., 0].size
    assert (banner >= 230).all(axis=2).sum() > 200  # white glyphs
    rows_with_text = np.nonzero((banner >= 230).all(axis=2).any(axis=1))[0]
    assert np.diff(rows_with_text).max() > 3  # two separate text lines


def text_rows(picture):
    """Row groups holding white glyph pixels (one group per text line)."""
    rows = np.nonzero((picture >= 230).all(axis=2).any(axis=1))[0]
    if rows.size == 0:
        return 0
    return 1 + int((np.diff(rows) > 1).sum())


def test_banner_bounded_for_a_long_expression():
    vis = make_visualizer()
    image = np.full((400, 400, 3), 120, np.uint8)
    mask = np.zeros((400, 400), np.uint8)
    text = ' '.join(f'word{i}' for i in range(600))  # 600 words
    out = vis.draw_overlay(image, mask, text=text)
    changed = np.nonzero((out != image).any(axis=(1, 2)))[0]
    # the banner stays within the top third; the rest of the image is
    # untouched
    assert changed.min() == 0 and changed.max() < 400 // 3
    np.testing.assert_array_equal(out[400 // 3:], image[400 // 3:])
    assert text_rows(out[:changed.max() + 1]) == MAX_LINES == 4
    style = text_style(400)
    lines = wrap([text], 400 - 2 * style.pad, style)
    assert len(lines) == 4 and lines[-1].endswith(' …')
    assert lines[0].startswith('word0 word1 ')
    # a later paragraph keeps its line when the first is cut
    lines = wrap([text, 'ref 7, IoU 0.500'], 400 - 2 * style.pad, style)
    assert len(lines) == 4 and lines[-1] == 'ref 7, IoU 0.500'
    assert lines[-2].endswith(' …')
    # a low image: a single line, at most a third of its height
    low = np.full((60, 400, 3), 120, np.uint8)
    out = vis.draw_overlay(low, np.zeros((60, 400), np.uint8), text=text)
    changed = np.nonzero((out != low).any(axis=(1, 2)))[0]
    assert changed.max() < 30 and text_rows(out[:30]) == 1
    # the header above side-by-side panels is bounded too
    image = random_image(60, 80)
    zeros = np.zeros((60, 80), np.float32)
    heights = [
        vis.render_activations(
            image,
            zeros,
            dict(global_activation=zeros, mean_local_activation=zeros),
            text=t).shape[0] for t in (text, text + ' more words')
    ]
    assert heights[0] == heights[1]


def test_non_ascii_text_is_drawn_not_question_marks():
    vis = make_visualizer()
    image = np.full((200, 400, 3), 120, np.uint8)
    mask = np.zeros((200, 400), np.uint8)

    def banner(text):
        return vis.draw_overlay(image, mask, text=text)[:60]

    # letters the font has are drawn as themselves
    accented = banner('the café near the naïve ship')
    for other in ('the caf? near the na?ve ship',
                  'the cafe near the naive ship'):
        assert (accented != banner(other)).any()
    assert printable('café Ж ß °') == 'café Ж ß °'
    # emoji and CJK (not in the font): a visible placeholder, never '?'
    assert printable('ship 🚢 港') == f'ship {PLACEHOLDER} {PLACEHOLDER}'
    emoji = banner('ship 🚢')
    for marks in ('?', '??', '???', '????'):  # cv2's Hershey font: ???
        assert (emoji != banner(f'ship {marks}')).any()
    assert (emoji != banner('ship')).any()  # something is drawn
    np.testing.assert_array_equal(emoji, banner(f'ship {PLACEHOLDER}'))


def sample(gt, pred, **meta):
    s = SegDataSample(metainfo=meta)
    if gt is not None:
        s.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None].long())
    if pred is not None:
        s.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None].float())
    return s


def test_compute_iou():
    vis = make_visualizer()
    gt = rect((50, 70), 10, 30, 10, 40)  # 600 px
    pred = rect((50, 70), 20, 40, 10, 40)  # 600 px, 300 shared
    assert vis.compute_iou(pred, gt) == pytest.approx(300 / 900)
    gt_ignored = gt.copy()
    gt_ignored[30:40, :] = 255  # removes the 300 prediction-only pixels
    assert vis.compute_iou(pred, gt_ignored) == pytest.approx(300 / 600)
    empty = np.zeros((50, 70), np.uint8)
    assert vis.compute_iou(empty, empty) == 1.0
    assert make_visualizer(empty_iou=0.0).compute_iou(empty, empty) == 0.0
    with pytest.raises(ValueError, match='binary'):
        vis.compute_iou(pred * 2, gt)


def test_compute_iou_is_the_metric_iou(tmp_path):
    """The IoU on a picture is the one in the metric's report."""
    rng = np.random.default_rng(5)
    vis = make_visualizer()
    samples = []
    for i in range(5):
        gt = (rng.random((31, 47)) < 0.4).astype(np.int64)
        gt[rng.random((31, 47)) < 0.05] = 255
        pred = (rng.random((31, 47)) < 0.5).astype(np.float32)
        samples.append(
            dict(
                pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                gt_sem_seg=dict(data=torch.from_numpy(gt)[None]),
                ref_id=i,
                image_id=i,
                text='t'))
    out = tmp_path / 'report.json'
    metric = RefSegIoUMetric(output_file=str(out))
    metric.process({}, samples)
    metric.compute_metrics(metric.results)
    report = json.loads(out.read_text())['samples']
    for s, entry in zip(samples, report):
        assert vis.compute_iou(s['pred_sem_seg']['data'][0],
                               s['gt_sem_seg']['data'][0]) == entry['iou']
    assert len({e['iou'] for e in report}) == 5


def test_side_by_side(tmp_path):
    vis = make_visualizer()
    image = random_image(50, 70)
    gt = rect((50, 70), 10, 30, 10, 40)
    pred = rect((50, 70), 20, 40, 10, 40)
    s = sample(gt, pred, text='the red car', ref_id=7, sent_id=70)
    out = vis.render_datasample(image, s)
    assert out.shape[1] == 3 * 70 and out.shape[0] > 50
    body = out[-50:]
    np.testing.assert_array_equal(body[:, :70], image)
    np.testing.assert_array_equal(body[:, 70:140],
                                  vis.draw_overlay(image, gt, vis.gt_color))
    np.testing.assert_array_equal(
        body[:, 140:], vis.draw_overlay(image, pred, vis.pred_color))
    # the header holds white text over each of the three panels
    header = out[:-50]
    white = (header >= 230).all(axis=2)
    assert all(white[:, k * 70:(k + 1) * 70].any() for k in range(3))
    # without labels: only the panels
    np.testing.assert_array_equal(
        vis.render_datasample(image, s, with_labels=False), body)
    # prediction only: image + prediction
    assert vis.render_datasample(image, sample(None, pred)).shape[1] == 140

    out_file = tmp_path / 'sample.png'
    vis.add_datasample('sample', image, s, out_file=str(out_file))
    written = cv2.imread(str(out_file))
    np.testing.assert_array_equal(written[..., ::-1], out)


def test_add_datasample_to_backend(tmp_path):
    vis = make_visualizer(
        vis_backends=[dict(type='LocalVisBackend')], save_dir=str(tmp_path))
    image = random_image(40, 40)
    s = sample(
        rect((40, 40), 0, 10, 0, 10),
        rect((40, 40), 0, 20, 0, 10),
        text='a ship')
    vis.add_datasample('test_ref1', image, s, step=3)
    written = cv2.imread(
        str(tmp_path / 'vis_data' / 'vis_image' / 'test_ref1_3.png'))
    assert written.shape[1] == 120


def test_errors():
    vis = make_visualizer()
    image = random_image(20, 20)
    with pytest.raises(ValueError, match='image size'):
        vis.draw_overlay(image, np.zeros((10, 20), np.uint8))
    with pytest.raises(ValueError, match='RGB uint8'):
        vis.draw_overlay(image.astype(np.float32), np.zeros((20, 20)))
    with pytest.raises(ValueError, match='opacity'):
        vis.draw_overlay(image, np.zeros((20, 20)), opacity=1.5)
    with pytest.raises(ValueError, match='color'):
        vis.draw_overlay(image, np.zeros((20, 20)), color=(0, 0, 300))
    with pytest.raises(ValueError, match='gt_sem_seg'):
        vis.render_datasample(image,
                              sample(np.zeros((10, 10), np.uint8), None))
    with pytest.raises(ValueError, match='alpha|opacity'):
        make_visualizer(alpha=2.0)
