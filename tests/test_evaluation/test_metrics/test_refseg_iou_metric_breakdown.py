# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Per-category and per-size breakdown of RefSegIoUMetric."""
import json

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from mmrsrefseg.evaluation import RefSegIoUMetric
from mmrsrefseg.evaluation.functional import (check_size_thresholds,
                                              refseg_scores, size_bounds,
                                              size_label)

CLASSES = ('airplane', 'ship', 'storagetank')


def sample(gt_box, pred_box, ref_id, category_id=None, size=(20, 20)):
    """20x20 sample with rectangular gt / pred ``(y0, y1, x0, x1)``."""
    gt = torch.zeros(size, dtype=torch.int64)
    pred = torch.zeros(size)
    if gt_box:
        y0, y1, x0, x1 = gt_box
        gt[y0:y1, x0:x1] = 1
    if pred_box:
        y0, y1, x0, x1 = pred_box
        pred[y0:y1, x0:x1] = 1
    out = dict(
        pred_sem_seg=dict(data=pred[None]),
        gt_sem_seg=dict(data=gt[None]),
        ref_id=ref_id,
        image_id=100 + ref_id,
        text=f'object {ref_id}',
        sent_id=1000 + ref_id,
        ori_shape=size)
    if category_id is not None:
        out['category_id'] = np.int64(category_id)  # numpy ints are kept
    return out


@pytest.fixture
def samples():
    """Hand-counted samples (size thresholds 10 / 100 px):

    a cat 0: gt 2x2=4, pred = gt           I 4   U 4   IoU 1    small
    b cat 0: gt 2x5=10, pred its 1st row   I 5   U 10  IoU .5   medium
    c cat 1: gt 10x10=100, pred left half  I 50  U 100 IoU .5   large
    d cat 1: gt 9x11=99, empty pred        I 0   U 99  IoU 0    medium
    e none : gt 20x10=200, pred shifted 5  I 100 U 300 IoU 1/3  large
    f cat 2: gt 1 px, pred 2 px            I 1   U 2   IoU .5   small
    """
    return [
        sample((0, 2, 0, 2), (0, 2, 0, 2), 0, 0),
        sample((0, 2, 0, 5), (0, 1, 0, 5), 1, 0),
        sample((0, 10, 0, 10), (0, 10, 0, 5), 2, 1),
        sample((0, 9, 0, 11), None, 3, 1),
        sample((0, 20, 0, 10), (0, 20, 5, 15), 4, None),
        sample((5, 6, 5, 6), (5, 6, 5, 7), 5, 2),
    ]


def evaluate(samples, tmp_path, dataset_meta=None, **kwargs):
    """Run the metric with a fresh logger; return metrics, report, log."""
    log_file = tmp_path / 'log.txt'
    logger = MMLogger.get_instance(
        f'breakdown_{tmp_path.name}_{len(kwargs)}', log_file=str(log_file))
    out = tmp_path / 'report.json'
    metric = RefSegIoUMetric(
        size_thresholds=(10, 100), output_file=str(out), **kwargs)
    metric.dataset_meta = dataset_meta
    metric.process({}, samples)
    metrics = metric.compute_metrics(metric.results)
    for handler in logger.handlers:
        handler.flush()
    return metrics, json.loads(out.read_text()), log_file.read_text()


def test_breakdown_hand_computed(samples, tmp_path):
    metrics, report, log = evaluate(
        samples, tmp_path, dataset_meta=dict(classes=CLASSES))
    # overall: I = 160, U = 515; mean IoU = (1+.5+.5+0+1/3+.5)/6
    assert metrics['oIoU'] == 31.07 and metrics['mIoU'] == 47.22
    assert metrics['Pr@0.5'] == 66.67
    assert list(metrics) == ['oIoU', 'mIoU'] + [
        f'Pr@{t}' for t in (0.5, 0.6, 0.7, 0.8, 0.9)
    ]
    cats = {row['category']: row for row in report['by_category']}
    assert [row['category_id'] for row in report['by_category']] == [0, 1, 2]
    assert list(cats) == list(CLASSES)  # sample e (no category) left out
    assert [cats[c]['num_samples'] for c in CLASSES] == [2, 2, 1]
    # airplane: I 9 / U 14; IoUs 1, .5
    assert (cats['airplane']['oIoU'], cats['airplane']['mIoU'],
            cats['airplane']['Pr@0.5']) == (64.29, 75.0, 100.0)
    # ship: I 50 / U 199; IoUs .5, 0
    assert (cats['ship']['oIoU'], cats['ship']['mIoU'],
            cats['ship']['Pr@0.5']) == (25.13, 25.0, 50.0)
    assert cats['storagetank']['oIoU'] == 50.0
    sizes = {row['size']: row for row in report['by_size']}
    assert list(sizes) == ['small', 'medium', 'large']
    assert [sizes[s]['num_samples'] for s in sizes] == [2, 2, 2]
    small = sizes['small']
    assert (small['min_area'], small['max_area']) == (0, 10)
    assert sizes['large']['max_area'] is None
    # small a, f: I 5 / U 6; medium b, d: I 5 / U 109; large c, e: 150/400
    assert (sizes['small']['oIoU'], sizes['small']['mIoU']) == (83.33, 75.0)
    assert (sizes['medium']['oIoU'], sizes['medium']['mIoU']) == (4.59, 25.0)
    assert (sizes['large']['oIoU'], sizes['large']['mIoU']) == (37.5, 41.67)
    assert sizes['large']['Pr@0.5'] == 50.0
    # per-sample records carry ids, category and size
    recs = report['samples']
    assert [r['size'] for r in recs
            ] == ['small', 'medium', 'large', 'medium', 'large', 'small']
    assert [r['gt_area'] for r in recs] == [4, 10, 100, 99, 200, 1]
    assert recs[4]['category'] is None and recs[4]['category_id'] is None
    assert recs[2]['category'] == 'ship' and recs[2]['sent_id'] == 1002
    assert report['summary']['size_thresholds'] == [10, 100]
    # the log holds both tables with the same numbers
    assert 'per-category results:' in log and 'per-size results' in log
    assert 'storagetank' in log and 'Category' in log
    assert '64.29' in log and '4.59' in log and '[10, 100)' in log
    assert '1 of 6 samples have no category_id' in log


def test_breakdown_off_keeps_overall(samples, tmp_path):
    on, report_on, _ = evaluate(samples, tmp_path)
    off, report_off, log = evaluate(samples, tmp_path, breakdown=False)
    assert on == off
    assert report_on['summary'] == report_off['summary']
    assert 'by_category' not in report_off and 'by_size' not in report_off
    assert report_off['samples'] == report_on['samples']
    assert 'per-category' not in log and 'per-size' not in log
    # no dataset metainfo: categories are named by id
    assert report_on['by_category'][0]['category'] == 'category 0'


def test_breakdown_groups_match_subsets(tmp_path):
    """Each group's numbers are those of evaluating its samples alone."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(40):
        h, w = rng.integers(8, 40, size=2)
        y0, x0 = rng.integers(0, 4, size=2)
        y1, x1 = rng.integers(y0 + 1, h), rng.integers(x0 + 1, w)
        dy, dx = rng.integers(-3, 4, size=2)
        gt_box = (y0, y1, x0, x1)
        pred_box = (max(y0 + dy, 0), y1 + dy, max(x0 + dx, 0), x1 + dx)
        samples.append(
            sample(gt_box, pred_box, i, int(rng.integers(0, 3)), (h, w)))
    _, report, _ = evaluate(samples, tmp_path, strict_pr=True)
    for row in report['by_category']:
        members = [
            s for s in report['samples']
            if s['category_id'] == row['category_id']
        ]
        expected = refseg_scores([s['intersection'] for s in members],
                                 [s['union'] for s in members],
                                 strict_pr=True)
        assert {k: row[k] for k in expected} == expected
        assert row['num_samples'] == len(members)
    assert sum(r['num_samples'] for r in report['by_size']) == 40


def test_category_id_checks(samples):
    metric = RefSegIoUMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    bad = dict(samples[0], category_id=3)
    with pytest.raises(ValueError, match='category_id 3 does not index'):
        metric.process({}, [bad])
    with pytest.raises(ValueError, match='must be an int'):
        metric.process({}, [dict(samples[0], category_id='airplane')])


def test_size_helpers():
    assert size_label(0) == 'small' and size_label(1023) == 'small'
    assert size_label(1024) == 'medium' and size_label(9215) == 'medium'
    assert size_label(9216) == 'large'
    assert size_bounds('medium', (1024, 9216)) == (1024, 9216)
    assert size_bounds('large', (1024, 9216)) == (9216, None)
    with pytest.raises(ValueError, match='unknown size bin'):
        size_bounds('huge', (1, 2))
    assert check_size_thresholds([32.5**2, 2000]) == (32.5**2, 2000)
    for bad in [(100, 10), (0, 5), (5, ), ('a', 3), (True, 5), (5, 5)]:
        with pytest.raises(ValueError, match='size_thresholds'):
            check_size_thresholds(bad)
        with pytest.raises(ValueError, match='RefSegIoUMetric'):
            RefSegIoUMetric(size_thresholds=bad)


def test_refseg_scores_edge_cases():
    assert refseg_scores([0], [0]) == {
        'oIoU': 100.0,
        'mIoU': 100.0,
        **{
            f'Pr@{t}': 100.0
            for t in (0.5, 0.6, 0.7, 0.8, 0.9)
        }
    }
    assert refseg_scores([0, 1], [0, 2], (0.5, ), empty_iou=0.0) == {
        'oIoU': 50.0,
        'mIoU': 25.0,
        'Pr@0.5': 50.0
    }
    with pytest.raises(ValueError, match='same number'):
        refseg_scores([], [])
    with pytest.raises(ValueError, match='same number'):
        refseg_scores([1, 2], [3])
