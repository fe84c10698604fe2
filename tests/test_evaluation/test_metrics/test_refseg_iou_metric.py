# Copyright (c) mmrsrefseg contributors. All rights reserved.
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.dataset import DefaultSampler
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from PIL import Image

from mmrsrefseg.evaluation import RefSegIoUMetric

PR_KEYS = ['Pr@0.5', 'Pr@0.6', 'Pr@0.7', 'Pr@0.8', 'Pr@0.9']


def make_sample(pred, gt, ref_id=0, image_id=0, text='the tank', **meta):
    """A ``SegDataSample.to_dict()``-like dict with (1, H, W) masks."""
    pred = torch.as_tensor(np.asarray(pred))
    gt = torch.as_tensor(np.asarray(gt))
    sample = dict(
        pred_sem_seg=dict(data=pred[None].float()),
        gt_sem_seg=dict(data=gt[None].long()),
        ref_id=ref_id,
        image_id=image_id,
        text=text,
        img_path=f'{image_id}.jpg',
        ori_shape=tuple(gt.shape))
    sample.update(meta)
    return sample


def run_metric(samples, **kwargs):
    metric = RefSegIoUMetric(**kwargs)
    metric.process({}, samples)
    records = list(metric.results)
    return metric.compute_metrics(metric.results), records


def rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=np.int64)
    m[y0:y1, x0:x1] = 1
    return m


@pytest.fixture
def hand_samples():
    """Four samples with hand-counted I/U.

    0: pred 2x2 at cols 0-1, gt 2x2 at cols 1-2 -> I=2, U=6, IoU 1/3
    1: pred 3 px, gt 4 px, pred inside gt     -> I=3, U=4, IoU 0.75
    2: pred 2 px inside gt 4 px               -> I=2, U=4, IoU 0.5
    3: empty pred on empty gt                 -> I=0, U=0
    """
    z = np.zeros((4, 4), dtype=np.int64)
    s0 = make_sample(rect(4, 4, 0, 2, 0, 2), rect(4, 4, 0, 2, 1, 3), 10)
    gt1 = rect(4, 4, 2, 4, 2, 4)
    pred1 = gt1.copy()
    pred1[3, 3] = 0
    s1 = make_sample(pred1, gt1, 11)
    s2 = make_sample(rect(4, 4, 2, 4, 2, 3), gt1, 12)
    s3 = make_sample(z, z, 13)
    return [s0, s1, s2, s3]


def test_hand_computed_default(hand_samples):
    metrics, records = run_metric(hand_samples)
    assert [(r['intersection'], r['union'])
            for r in records] == [(2, 6), (3, 4), (2, 4), (0, 0)]
    assert list(metrics) == ['oIoU', 'mIoU'] + PR_KEYS
    # oIoU = (2+3+2+0) / (6+4+4+0) = 0.5
    assert metrics['oIoU'] == 50.0
    # mIoU = (1/3 + 3/4 + 1/2 + 1) / 4 = 0.645833...
    assert metrics['mIoU'] == 64.58
    # IoU >= X: {1/3, .75, .5, 1}
    assert metrics['Pr@0.5'] == 75.0
    assert metrics['Pr@0.6'] == 50.0
    assert metrics['Pr@0.7'] == 50.0
    assert metrics['Pr@0.8'] == 25.0
    assert metrics['Pr@0.9'] == 25.0
    assert all(isinstance(v, float) for v in metrics.values())


def test_hand_computed_rmsin_empty_and_strict(hand_samples):
    metrics, _ = run_metric(hand_samples, empty_iou=0.0)
    assert metrics['oIoU'] == 50.0
    # (1/3 + 3/4 + 1/2 + 0) / 4 = 0.395833...
    assert metrics['mIoU'] == 39.58
    assert metrics['Pr@0.5'] == 50.0  # .75 and the exact .5
    assert metrics['Pr@0.9'] == 0.0
    strict, _ = run_metric(hand_samples, empty_iou=0.0, strict_pr=True)
    assert strict['Pr@0.5'] == 25.0  # IoU exactly 0.5 no longer counts
    assert strict['mIoU'] == metrics['mIoU']


@pytest.mark.parametrize('inter,union,thr', [(1, 2, 0.5), (3, 5, 0.6),
                                             (7, 10, 0.7), (4, 5, 0.8),
                                             (9, 10, 0.9)])
def test_pr_exact_boundaries(inter, union, thr):
    # 1 x union row: pred covers the first `union` px, gt the first `inter`.
    pred = np.ones((1, union), dtype=np.int64)
    gt = np.zeros((1, union), dtype=np.int64)
    gt[0, :inter] = 1
    ge, recs = run_metric([make_sample(pred, gt)])
    assert (recs[0]['intersection'], recs[0]['union']) == (inter, union)
    gt_rule, _ = run_metric([make_sample(pred, gt)], strict_pr=True)
    assert ge[f'Pr@{thr}'] == 100.0
    assert gt_rule[f'Pr@{thr}'] == 0.0


def test_ignore_index():
    pred = np.ones((2, 2), dtype=np.int64)
    gt = np.array([[1, 255], [0, 1]])
    _, recs = run_metric([make_sample(pred, gt)])
    # the ignored pixel leaves pred: 3 px, gt: 2 px -> I=2, U=3
    assert (recs[0]['intersection'], recs[0]['union']) == (2, 3)
    # all ignored -> empty union -> empty_iou, never NaN
    all_ign = np.full((2, 2), 255)
    m1, recs = run_metric([make_sample(pred, all_ign)])
    assert recs[0]['union'] == 0
    assert m1['oIoU'] == m1['mIoU'] == 100.0
    m0, _ = run_metric([make_sample(pred, all_ign)], empty_iou=0.0)
    assert m0['oIoU'] == m0['mIoU'] == m0['Pr@0.5'] == 0.0
    with pytest.raises(ValueError, match='ref_id=0'):
        run_metric([make_sample(pred, gt)], ignore_index=None)


def test_all_empty_split_is_not_nan():
    z = np.zeros((3, 3), dtype=np.int64)
    m, _ = run_metric([make_sample(z, z), make_sample(z, z, ref_id=1)])
    assert m == {'oIoU': 100.0, 'mIoU': 100.0, **{k: 100.0 for k in PR_KEYS}}


def test_eval_size_hand_computed():
    # Upsampling 2x2 -> 4x4 turns every pixel into a 2x2 block.
    pred = np.array([[1, 0], [0, 0]])
    gt = np.array([[1, 1], [0, 0]])
    _, recs = run_metric([make_sample(pred, gt)], eval_size=(4, 4))
    assert (recs[0]['intersection'], recs[0]['union']) == (4, 8)
    # Downsampling 4x4 -> 2x2 samples pixel centres: rows/cols 1 and 3.
    pred = np.zeros((4, 4), dtype=np.int64)
    pred[1, 1] = pred[3, 3] = 1  # both sampled
    pred[0, 0] = pred[2, 2] = 1  # neither sampled
    gt = np.zeros((4, 4), dtype=np.int64)
    gt[1, 1] = gt[1, 3] = 1
    gt[0, 2] = 1  # not sampled
    _, recs = run_metric([make_sample(pred, gt)], eval_size=2)
    # resized pred {(0,0),(1,1)}, gt {(0,0),(0,1)} -> I=1, U=3
    assert (recs[0]['intersection'], recs[0]['union']) == (1, 3)
    _, orig = run_metric([make_sample(pred, gt)])
    assert (orig[0]['intersection'], orig[0]['union']) == (1, 6)


def test_eval_size_matches_pil_nearest():
    """480x480 protocol == PIL NEAREST resize (what LAVT/RMSIN apply)."""
    rng = np.random.default_rng(0)
    for h, w in [(800, 800), (787, 800), (97, 131)]:
        # blobby masks so that the resize matters
        pred = (rng.random((h // 8 + 1, w // 8 + 1))
                > 0.5).repeat(8, 0).repeat(8, 1)[:h, :w].astype(np.uint8)
        gt = (rng.random((h // 5 + 1, w // 5 + 1))
              > 0.6).repeat(5, 0).repeat(5, 1)[:h, :w].astype(np.uint8)
        gt[rng.random((h, w)) > 0.97] = 255
        _, recs = run_metric([make_sample(pred, gt)], eval_size=(480, 480))
        p = np.array(Image.fromarray(pred).resize((480, 480), Image.NEAREST))
        g = np.array(Image.fromarray(gt).resize((480, 480), Image.NEAREST))
        valid = g != 255
        p = (p == 1) & valid
        g = g == 1
        assert recs[0]['intersection'] == int((p & g).sum())
        assert recs[0]['union'] == int((p | g).sum())


def numpy_reference(preds, gts, ignore=255, empty_iou=1.0):
    """Independent oIoU / mIoU / Pr (>=) in [0, 1] with numpy."""
    inter, union = [], []
    for p, g in zip(preds, gts):
        valid = g != ignore
        p = p.astype(bool) & valid
        g = (g == 1) & valid
        inter.append(np.logical_and(p, g).sum())
        union.append(np.logical_or(p, g).sum())
    inter, union = np.array(inter, float), np.array(union, float)
    iou = np.array([i / u if u else empty_iou for i, u in zip(inter, union)])
    res = {'oIoU': inter.sum() / union.sum(), 'mIoU': iou.mean()}
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        res[f'Pr@{t}'] = np.mean([x >= t for x in iou])
    return res, inter, union, iou


def random_masks(n, seed):
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for i in range(n):
        h, w = rng.integers(5, 60, size=2)
        gt = (rng.random((h, w)) < rng.random()).astype(np.int64)
        # predictions correlated with gt so IoUs spread over [0, 1]
        flip = rng.random((h, w)) < rng.random() * 0.6
        pred = np.where(flip, 1 - gt, gt)
        gt[rng.random((h, w)) < 0.05] = 255
        if i == 0:
            pred[:] = 0
            gt[gt == 1] = 0  # empty union
        preds.append(pred)
        gts.append(gt)
    return preds, gts


def test_random_masks_match_numpy(tmp_path):
    preds, gts = random_masks(60, seed=1)
    out = tmp_path / 'report.json'
    samples = [
        make_sample(p, g, ref_id=i, image_id=100 + i)
        for i, (p, g) in enumerate(zip(preds, gts))
    ]
    metrics, recs = run_metric(samples, output_file=str(out))
    ref, inter, union, iou = numpy_reference(preds, gts)
    np.testing.assert_array_equal([r['intersection'] for r in recs], inter)
    np.testing.assert_array_equal([r['union'] for r in recs], union)
    report_iou = [s['iou'] for s in json.loads(out.read_text())['samples']]
    np.testing.assert_allclose(report_iou, iou, rtol=0, atol=1e-6)
    for key, value in ref.items():
        assert abs(metrics[key] - np.round(value * 100, 2)) < 1e-6, key
    assert 0 < ref['mIoU'] < 1 and 0 < ref['Pr@0.5'] < 1


def test_matches_mmdet_refseg_metric():
    pytest.importorskip('mmdet')
    from mmdet.evaluation.metrics.refseg_metric import RefSegMetric
    from mmdet.structures.mask import BitmapMasks
    preds, gts = random_masks(30, seed=2)
    gts = [np.where(g == 255, 0, g) for g in gts]  # mmdet has no ignore
    ours, _ = run_metric([make_sample(p, g) for p, g in zip(preds, gts)],
                         empty_iou=0.0)
    mmdet_metric = RefSegMetric()
    mmdet_metric.process({}, [
        dict(
            pred_instances=dict(masks=torch.from_numpy(p[None]).bool()),
            gt_masks=BitmapMasks(g[None].astype(np.uint8), *g.shape))
        for p, g in zip(preds, gts)
    ])
    theirs = mmdet_metric.compute_metrics(mmdet_metric.results)
    assert abs(ours['oIoU'] - float(theirs['cIoU'])) <= 0.005 + 1e-9
    assert abs(ours['mIoU'] - float(theirs['mIoU'])) <= 0.005 + 1e-9


def test_json_output(tmp_path, hand_samples):
    out = tmp_path / 'sub' / 'refseg.json'
    meta = dict(checkpoint='work_dirs/x/iter_40000.pth', split='test')
    metrics, _ = run_metric(
        hand_samples,
        eval_size=(480, 480),
        output_file=str(out),
        output_meta=meta)
    report = json.loads(out.read_text())
    assert list(report) == [
        'checkpoint', 'split', 'summary', 'by_category', 'by_size', 'samples'
    ]
    assert report['checkpoint'] == meta['checkpoint']
    summary = report['summary']
    assert summary == dict(
        metrics,
        num_samples=4,
        protocol='480x480',
        pr_rule='IoU >= X',
        empty_iou=1.0,
        size_thresholds=[1024, 9216])
    assert summary['oIoU'] == 50.0  # 480/4 = 120: areas scale by 120**2
    assert [s['ref_id'] for s in report['samples']] == [10, 11, 12, 13]
    first = report['samples'][0]
    assert first == dict(
        ref_id=10,
        sent_id=None,
        image_id=0,
        text='the tank',
        category_id=None,
        category=None,
        gt_area=4,  # at the original 4x4 resolution, not 480x480
        size='small',
        intersection=2 * 120**2,
        union=6 * 120**2,
        iou=pytest.approx(1 / 3))
    assert report['by_category'] == []  # no sample has a category
    assert report['by_size'] == [
        dict(
            size='small', min_area=0, max_area=1024, num_samples=4, **metrics)
    ]
    for key in ('summary', 'by_size'):
        with pytest.raises(ValueError, match='reserved'):
            RefSegIoUMetric(output_file=str(out), output_meta={key: 1})


def test_through_evaluator_and_registry():
    register_all_modules(init_default_scope=True)
    metric = METRICS.build(dict(type='RefSegIoUMetric', eval_size=480))
    assert isinstance(metric, RefSegIoUMetric)
    assert metric.eval_size == (480, 480)
    sample = SegDataSample(
        metainfo=dict(
            ref_id=5,
            image_id=np.int64(7),
            text='the white tank',
            ori_shape=(4, 4),
            img_path='7.jpg'))
    sample.pred_sem_seg = PixelData(
        data=torch.from_numpy(rect(4, 4, 0, 2, 0, 2))[None].float())
    sample.gt_sem_seg = PixelData(
        data=torch.from_numpy(rect(4, 4, 0, 2, 1, 3))[None])
    evaluator = Evaluator(metric)
    evaluator.process([sample])
    assert metric.results == [
        dict(
            ref_id=5,
            image_id=7,
            text='the white tank',
            sent_id=None,
            category_id=None,
            intersection=2 * 120**2,
            union=6 * 120**2,
            gt_area=4)
    ]
    assert evaluator.evaluate(1)['oIoU'] == 33.33


@pytest.mark.parametrize(
    'change,match',
    [
        (dict(pred_shape=(4, 5)), 'prediction shape'),
        (dict(pred_value=0.5), 'binary 0/1'),
        (dict(pred_value=2), 'binary 0/1'),
        (dict(gt_value=2), 'only'),
        (dict(gt_value=-1), 'only'),
        (dict(gt_value=256), 'only'),  # would wrap to 0 in a uint8 cast
        (dict(gt_value=255 + 2**8), 'only'),  # would wrap to 255 (ignore)
        (dict(ori_shape=(8, 8)), 'original resolution'),
    ])
def test_bad_input_raises(change, match):
    pred = rect(4, 4, 0, 2, 0, 2).astype(np.float32)
    gt = rect(4, 4, 1, 3, 0, 2)
    if 'pred_shape' in change:
        pred = np.zeros(change['pred_shape'], dtype=np.float32)
    if 'pred_value' in change:
        pred[0, 0] = change['pred_value']
    if 'gt_value' in change:
        gt[3, 3] = change['gt_value']
    sample = make_sample(pred, gt, ref_id=77)
    sample['pred_sem_seg']['data'] = torch.from_numpy(pred)[None]
    if 'ori_shape' in change:
        sample['ori_shape'] = change['ori_shape']
    with pytest.raises(ValueError, match=match) as err:
        run_metric([sample])
    assert 'ref_id=77' in str(err.value)


def test_missing_key_and_bad_args():
    sample = make_sample(np.zeros((2, 2)), np.zeros((2, 2)))
    del sample['text']
    with pytest.raises(KeyError, match='text'):
        run_metric([sample])
    with pytest.raises(ValueError, match='no samples'):
        RefSegIoUMetric().compute_metrics([])
    for kwargs in [
            dict(eval_size=(480, )),
            dict(eval_size=(0, 480)),
            dict(empty_iou=1.5),
            dict(pr_thresholds=(0.5, 1.2)),
            dict(ignore_index=1),
            dict(ignore_index=-1)
    ]:
        with pytest.raises(ValueError):
            RefSegIoUMetric(**kwargs)


def test_bool_and_uint8_masks():
    pred = torch.from_numpy(rect(4, 4, 0, 2, 0, 2)).bool()[None]
    gt = torch.from_numpy(rect(4, 4, 0, 2, 1, 3)).to(torch.uint8)[None]
    sample = make_sample(np.zeros((4, 4)), np.zeros((4, 4)))
    sample['pred_sem_seg']['data'] = pred
    sample['gt_sem_seg']['data'] = gt
    _, recs = run_metric([sample])
    assert (recs[0]['intersection'], recs[0]['union']) == (2, 6)
    # int64 prediction, bool ground truth
    sample['pred_sem_seg']['data'] = pred.long()
    sample['gt_sem_seg']['data'] = gt.bool()
    _, recs = run_metric([sample])
    assert (recs[0]['intersection'], recs[0]['union']) == (2, 6)
    sample['pred_sem_seg']['data'] = pred.long() * 2
    with pytest.raises(ValueError, match='binary'):
        run_metric([sample])


# ---------------------------------------------------------------- distributed
def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _dist_worker(rank, world_size, port, samples, workdir, configs):
    torch.set_num_threads(1)
    # mmengine's cpu collection without collect_dir creates `.dist_test`
    # in the working directory.
    os.chdir(workdir)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    try:
        sampler = DefaultSampler(samples, shuffle=False)  # pads to 8
        indices = list(sampler)
        with open(os.path.join(workdir, f'indices_{rank}.json'), 'w') as f:
            json.dump(indices, f)
        for name, kwargs in configs.items():
            metric = RefSegIoUMetric(
                output_file=os.path.join(workdir, f'{name}.json'), **kwargs)
            for start in range(0, len(indices), 2):  # batch size 2
                metric.process({},
                               [samples[i] for i in indices[start:start + 2]])
            metrics = metric.evaluate(len(samples))
            with open(os.path.join(workdir, f'{name}_rank{rank}.json'),
                      'w') as f:
                json.dump(metrics, f)
    finally:
        dist.destroy_process_group()


def test_distributed_two_ranks_gloo(tmp_path):
    preds, gts = random_masks(7, seed=3)
    # sample 0 (the one DefaultSampler repeats as padding) is a perfect
    # non-empty prediction, so counting it twice would change the numbers
    gts[0] = np.zeros_like(gts[0])
    gts[0][:3, :3] = 1
    preds[0] = gts[0].copy()
    samples = [
        make_sample(p, g, ref_id=i, image_id=i)
        for i, (p, g) in enumerate(zip(preds, gts))
    ]
    single, _ = run_metric(samples)
    doubled, _ = run_metric(samples + samples[:1])
    assert single != doubled

    collect_dir = tmp_path / 'collect'
    configs = {
        'cpu_tmpdir': dict(collect_device='cpu'),
        'cpu_collect_dir':
        dict(collect_device='cpu', collect_dir=str(collect_dir)),
        'gpu_object_gather': dict(collect_device='gpu'),
    }
    mp.start_processes(
        _dist_worker,
        args=(2, _free_port(), samples, str(tmp_path), configs),
        nprocs=2,
        join=True,
        start_method='fork')
    shards = [
        json.loads((tmp_path / f'indices_{r}.json').read_text())
        for r in range(2)
    ]
    assert shards == [[0, 2, 4, 6], [1, 3, 5, 0]]  # last batch padded
    for name in configs:
        for rank in range(2):
            got = json.loads(
                (tmp_path / f'{name}_rank{rank}.json').read_text())
            assert got == single, (name, rank)
        report = json.loads((tmp_path / f'{name}.json').read_text())
        assert [s['ref_id'] for s in report['samples']] == list(range(7))
        assert report['summary']['num_samples'] == 7
