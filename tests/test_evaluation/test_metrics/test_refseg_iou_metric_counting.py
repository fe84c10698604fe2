# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Pixel counting (``count_pixels``, used by RefSegIoUMetric and the
visualiser) against a plain reference, over sizes, dtypes and protocols."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmrsrefseg.evaluation import RefSegIoUMetric
from mmrsrefseg.evaluation.functional import count_pixels
from mmrsrefseg.evaluation.functional.pixel_counts import _nearest_exact_index

PRED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64,
               torch.int64, torch.uint8, torch.bool)
GT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
SIZES = ((1, 1), (2, 3), (7, 5), (37, 53), (97, 131), (256, 256), (787, 800),
         (800, 800))
EVAL_SIZES = (None, (480, 480), (4, 4), (5, 3), (200, 300))


def reference_counts(pred, gt, eval_size, ignore_index):
    """(I, U, gt area) the plain way: each mask resized on its own as
    float64 with ``F.interpolate(mode='nearest-exact')``, then boolean
    algebra on ``==`` comparisons."""
    p = pred.double()
    g = gt.double()
    area = int((g == 1).sum())
    if eval_size is not None:
        p = F.interpolate(p[None, None], eval_size, mode='nearest-exact')[0, 0]
        g = F.interpolate(g[None, None], eval_size, mode='nearest-exact')[0, 0]
    valid = torch.ones_like(g, dtype=torch.bool)
    if ignore_index is not None:
        valid = g != ignore_index
    p = (p == 1) & valid
    g = g == 1
    return int((p & g).sum()), int((p | g).sum()), area


def random_pair(rng, h, w, ignore_index):
    """Blobby correlated (pred, gt) int64 masks, a few ignored gt pixels."""
    block = int(rng.integers(1, 9))
    gt = rng.random((h // block + 1, w // block + 1)) < rng.random()
    gt = gt.repeat(block, 0).repeat(block, 1)[:h, :w].astype(np.int64)
    flip = rng.random((h, w)) < rng.random() * 0.5
    pred = np.where(flip, 1 - gt, gt)
    if ignore_index is not None:
        gt[rng.random((h, w)) < 0.05] = ignore_index
    return torch.from_numpy(pred), torch.from_numpy(gt)


def counts_of(pred, gt, eval_size, ignore_index):
    """(I, U, gt area) from ``count_pixels`` (which raises on any value
    other than 0/1 in the prediction and 0/1/ignore in the ground truth)."""
    counts = count_pixels(pred, gt, ignore_index, eval_size)
    return counts.intersection, counts.union, counts.gt_area


def test_nearest_exact_index_is_torch_resize():
    for in_size in (1, 3, 7, 97, 480, 787, 800, 801, 1024):
        for out_size in (1, 5, 7, 200, 480, 800):
            ramp = torch.arange(in_size, dtype=torch.float32)
            ref = F.interpolate(
                ramp.view(1, 1, 1, -1).expand(1, 1, 2, -1), (2, out_size),
                mode='nearest-exact')[0, 0, 0].long().numpy()
            np.testing.assert_array_equal(
                _nearest_exact_index(in_size, out_size), ref)


@pytest.mark.parametrize('eval_size', EVAL_SIZES)
def test_counts_match_reference(eval_size):
    rng = np.random.default_rng(0 if eval_size is None else sum(eval_size))
    for case, (h, w) in enumerate(SIZES):
        ignore_index = (255, None, 100)[case % 3]
        pred, gt = random_pair(rng, h, w, ignore_index)
        ref = reference_counts(pred, gt, eval_size, ignore_index)
        pred_dtype = PRED_DTYPES[case % len(PRED_DTYPES)]
        gt_dtype = GT_DTYPES[case % len(GT_DTYPES)]
        if gt_dtype == torch.int8 and ignore_index == 255:
            gt_dtype = torch.int16  # 255 does not fit in int8
        p, g = pred.to(pred_dtype), gt.to(gt_dtype)
        got = counts_of(p, g, eval_size, ignore_index)
        assert got == ref, (h, w, pred_dtype, gt_dtype, eval_size)
        if ignore_index is None:  # a bool ground truth holds only 0/1
            got = counts_of(p, g.bool(), eval_size, ignore_index)
            assert got == ref, ('bool gt', h, w)


def test_every_dtype_pair_and_strided_input():
    rng = np.random.default_rng(7)
    pred, gt = random_pair(rng, 61, 45, 255)
    for eval_size in (None, (30, 50)):
        ref = reference_counts(pred, gt, eval_size, 255)
        for pred_dtype in PRED_DTYPES:
            for gt_dtype in (torch.int64, torch.int32, torch.uint8):
                p, g = pred.to(pred_dtype), gt.to(gt_dtype)
                assert counts_of(p, g, eval_size, 255) == ref
                # numpy arrays (the visualiser's input) count the same
                if pred_dtype != torch.bfloat16:
                    assert counts_of(p.numpy(), g.numpy(), eval_size,
                                     255) == ref
        # transposed (non-contiguous) views count like their copies
        ref_t = reference_counts(pred.t(), gt.t(), eval_size, 255)
        assert (ref_t != ref) == (eval_size is not None)
        got = counts_of(pred.t().float(), gt.t(), eval_size, 255)
        assert got == ref_t
        got = counts_of(pred.numpy().T, gt.numpy().T, eval_size, 255)
        assert got == ref_t


def make_samples(device='cpu'):
    """Three samples (17x23, 800x800, 787x800) on ``device`` and their
    reference (I, U, gt area) at the original resolution and at 480x480."""
    rng = np.random.default_rng(3)
    samples, refs = [], []
    for i, (h, w) in enumerate(((17, 23), (800, 800), (787, 800))):
        pred, gt = random_pair(rng, h, w, 255)
        samples.append(
            dict(
                pred_sem_seg=dict(data=pred[None].float().to(device)),
                gt_sem_seg=dict(data=gt[None].to(device)),
                ref_id=i,
                image_id=i,
                text='t',
                ori_shape=(h, w)))
        refs.append([
            reference_counts(pred, gt, eval_size, 255)
            for eval_size in (None, (480, 480))
        ])
    return samples, refs


def records_of(samples, eval_size):
    metric = RefSegIoUMetric(eval_size=eval_size)
    metric.process({}, samples)
    return [(r['intersection'], r['union'], r['gt_area'])
            for r in metric.results]


def test_records_through_process():
    """process() gives the reference I / U / gt area."""
    samples, refs = make_samples()
    for k, eval_size in enumerate((None, (480, 480))):
        got = records_of(samples, eval_size)
        assert got == [ref[k] for ref in refs], eval_size


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')
def test_records_of_gpu_masks():
    """Masks on a GPU are copied to the CPU and counted the same way."""
    samples, refs = make_samples('cuda')
    for k, eval_size in enumerate((None, (480, 480))):
        got = records_of(samples, eval_size)
        assert got == [ref[k] for ref in refs], eval_size


@pytest.mark.parametrize(
    'pred_dtype,pred_value,gt_dtype,gt_value,match',
    [
        (torch.float32, 0.5, torch.int64, 1, 'binary'),
        (torch.float32, float('nan'), torch.int64, 1, 'binary'),
        (torch.float32, float('inf'), torch.int64, 1, 'binary'),
        (torch.float32, 1 + 2**-23, torch.int64, 1, 'binary'),
        (torch.float16, 0.25, torch.int64, 1, 'binary'),
        (torch.bfloat16, -1.0, torch.int64, 1, 'binary'),
        (torch.int64, 2, torch.int64, 1, 'binary'),
        (torch.int64, -1, torch.int64, 1, 'binary'),
        (torch.uint8, 255, torch.int64, 1, 'binary'),
        (torch.float32, 1.0, torch.int64, 256, 'only'),
        (torch.float32, 1.0, torch.int64, 255 + 2**8, 'only'),
        (torch.float32, 1.0, torch.int64, -1, 'only'),
        (torch.float32, 1.0, torch.int64, -2**63, 'only'),
        (torch.float32, 1.0, torch.int32, -2**31, 'only'),
        (torch.float32, 1.0, torch.int8, -1, 'only'),  # casts to 255
        (torch.float32, 1.0, torch.uint8, 2, 'only'),
        (torch.float32, 1.0, torch.uint8, 254, 'only'),
    ])
def test_bad_values_raise(pred_dtype, pred_value, gt_dtype, gt_value, match):
    pred = torch.zeros(3, 4, dtype=pred_dtype)
    gt = torch.zeros(3, 4, dtype=gt_dtype)
    pred[1, 2] = pred_value
    gt[2, 3] = gt_value
    sample = dict(
        pred_sem_seg=dict(data=pred),
        gt_sem_seg=dict(data=gt),
        ref_id=9,
        image_id=9,
        text='t')
    with pytest.raises(ValueError, match=match) as err:
        RefSegIoUMetric().process({}, [sample])
    assert 'ref_id=9' in str(err.value)
    # -0.0 is a valid 0
    pred = torch.zeros(3, 4)
    pred[0, 0] = -0.0
    sample.update(
        pred_sem_seg=dict(data=pred),
        gt_sem_seg=dict(data=torch.ones(3, 4, dtype=torch.int64)))
    metric = RefSegIoUMetric()
    metric.process({}, [sample])
    assert (metric.results[0]['intersection'],
            metric.results[0]['union']) == (0, 12)
