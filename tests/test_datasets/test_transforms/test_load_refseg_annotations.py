# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""LoadRefSegAnnotations, and packing with the configs' meta keys."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmseg.registry import TRANSFORMS
from mmseg.structures import SegDataSample
from utils.refseg_data import META_KEYS, encode_rle, rect_mask

from mmrsrefseg.datasets import LoadRefSegAnnotations


def _nearest(mask, hw):
    """Independent nearest-neighbour resize: dst (y, x) <- src
    (floor(y * h_src / h_dst), floor(x * w_src / w_dst))."""
    rows = np.floor(np.arange(hw[0]) * mask.shape[0] / hw[0]).astype(int)
    cols = np.floor(np.arange(hw[1]) * mask.shape[1] / hw[1]).astype(int)
    return mask[rows][:, cols]


def _results(segmentation,
             ori_shape=(24, 32),
             img_path='imgs/00010.jpg',
             **kwargs):
    return dict(
        segmentation=segmentation,
        ori_shape=ori_shape,
        img_path=img_path,
        ref_id=3,
        seg_fields=[],
        **kwargs)


def test_registered():
    assert TRANSFORMS.get('LoadRefSegAnnotations') is LoadRefSegAnnotations
    # packing is mmseg's PackSegInputs with the configs' meta keys
    assert 'PackRefSegInputs' not in TRANSFORMS
    assert set(META_KEYS) >= {
        'text', 'ref_id', 'ann_id', 'image_id', 'sent_id', 'category_id',
        'img_path', 'ori_shape', 'img_shape'
    }


def test_decode_forms_and_seg_fields():
    box = rect_mask((24, 32), (2, 3, 9, 12))
    other = rect_mask((24, 32), (20, 5, 29, 20))
    load = LoadRefSegAnnotations()
    forms = [
        encode_rle(box), [encode_rle(box)],
        dict(size=[24, 32], counts=encode_rle(box)['counts'].encode()),
        [[2, 3, 10, 3, 10, 13, 2, 13]]
    ]
    for form in forms:
        out = load(_results(form))
        assert out['gt_seg_map'].dtype == np.uint8
        np.testing.assert_array_equal(out['gt_seg_map'], box)
        assert out['seg_fields'] == ['gt_seg_map']
    out = load(_results([encode_rle(box), encode_rle(other)]))
    np.testing.assert_array_equal(out['gt_seg_map'], box | other)
    out = load(load(_results(encode_rle(box))))
    assert out['seg_fields'] == ['gt_seg_map']
    # seg_fields is created when the dataset did not set it
    results = _results(encode_rle(box))
    results.pop('seg_fields')
    assert load(results)['seg_fields'] == ['gt_seg_map']
    assert repr(load) == ('LoadRefSegAnnotations(mask_threshold=0, '
                          'backend_args=None)')


def _write_image(tmp_path, hw=(24, 32)):
    path = tmp_path / 'img.jpg'
    cv2.imwrite(str(path), np.full((*hw, 3), 128, np.uint8))
    return str(path)


def test_train_order_resizes_gt(tmp_path):
    box = rect_mask((24, 32), (2, 3, 9, 12))
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='LoadRefSegAnnotations'),
        dict(type='Resize', scale=(80, 60), keep_ratio=False),
    ])
    out = pipeline(
        dict(
            img_path=_write_image(tmp_path),
            segmentation=[encode_rle(box)],
            seg_fields=[],
            ref_id=1))
    assert out['img'].shape == (60, 80, 3)
    assert out['gt_seg_map'].shape == (60, 80)
    np.testing.assert_array_equal(out['gt_seg_map'], _nearest(box, (60, 80)))
    assert out['ori_shape'] == (24, 32)


def test_test_order_keeps_gt_at_original_size(tmp_path):
    box = rect_mask((24, 32), (2, 3, 9, 12))
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(80, 60), keep_ratio=False),
        dict(type='LoadRefSegAnnotations'),
        dict(type='PackSegInputs', meta_keys=META_KEYS)
    ])
    out = pipeline(
        dict(
            img_path=_write_image(tmp_path),
            segmentation=[encode_rle(box)],
            seg_fields=[],
            reduce_zero_label=False,
            text='the red tank',
            ref_id=1,
            ann_id=1001,
            image_id=10,
            sent_id=10,
            category_id=15,
            bbox=[2, 3, 9, 12]))
    assert out['inputs'].shape == (3, 60, 80)
    assert out['inputs'].dtype == torch.uint8
    sample = out['data_samples']
    assert isinstance(sample, SegDataSample)
    gt = sample.gt_sem_seg.data
    assert gt.shape == (1, 24, 32) and gt.dtype == torch.int64
    assert int(gt.sum()) == 80
    np.testing.assert_array_equal(gt[0].numpy(), box)
    meta = sample.metainfo
    assert meta['text'] == 'the red tank' and isinstance(meta['text'], str)
    assert (meta['ref_id'], meta['ann_id'], meta['image_id'], meta['sent_id'],
            meta['category_id']) == (1, 1001, 10, 10, 15)
    assert meta['ori_shape'] == (24, 32) and meta['img_shape'] == (60, 80)
    assert 'bbox' not in meta and 'segmentation' not in meta


def test_size_quirk_resize_when_marked():
    """The dataset decides (size_tolerance, counted and logged there) and
    marks the sample; the transform resizes what was marked."""
    rle = encode_rle(rect_mask((800, 800), (100, 500, 299, 789)))
    load = LoadRefSegAnnotations()
    first = load(_results([rle], ori_shape=(787, 800), resize_mask=True))
    gt = first['gt_seg_map']
    assert gt.shape == (787, 800)
    np.testing.assert_array_equal(
        gt, _nearest(rect_mask((800, 800), (100, 500, 299, 789)), (787, 800)))
    # unmarked, the same difference is an error naming the image and ref
    with pytest.raises(ValueError) as err:
        load(_results([rle], ori_shape=(787, 800)))
    assert 'imgs/00010.jpg (ref_id 3)' in str(err.value)
    assert '(800, 800) differs from the image size (787, 800)' in str(
        err.value)


def test_errors_name_image_and_ref():
    load = LoadRefSegAnnotations()
    rle = encode_rle(rect_mask((30, 32), (0, 0, 3, 3)))
    with pytest.raises(ValueError) as err:
        load(_results([rle]))  # 30 vs 24 rows, not accepted by a dataset
    assert 'imgs/00010.jpg (ref_id 3)' in str(err.value)
    assert 'size_tolerance' in str(err.value)
    with pytest.raises(ValueError, match=r'00010.jpg \(ref_id 3\).*size'):
        load(_results([dict(counts='13')]))
    with pytest.raises(KeyError, match='ori_shape'):
        load(dict(segmentation=[rle], img_path='a.jpg', ref_id=1))
    # the tolerance is an option of the dataset only
    with pytest.raises(TypeError, match='size_tolerance'):
        LoadRefSegAnnotations(size_tolerance=4)
