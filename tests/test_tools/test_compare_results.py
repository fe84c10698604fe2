# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/analysis_tools/compare_results.py on reports written by the metric."""
import json
import runpy
from pathlib import Path

import pytest
import torch

from mmrsrefseg.evaluation import RefSegIoUMetric

TOOL = Path(__file__).parents[2] / 'tools/analysis_tools/compare_results.py'
CLASSES = ('airplane', 'ship')


@pytest.fixture(scope='module')
def tool():
    return runpy.run_path(str(TOOL))


def make_report(path, pred_cols, ref_ids=(0, 1, 2), **kwargs):
    """Three 10x10 samples (size thresholds 10 / 100 px): gt = columns 0-3
    (40 px, medium) for samples 0 (airplane) and 1 (ship), row 0 columns
    0-4 (5 px, small) for sample 2 (airplane); pred = columns
    ``0 .. pred_cols[i] - 1``."""
    samples = []
    for i, (ref_id, cols) in enumerate(zip(ref_ids, pred_cols)):
        gt = torch.zeros(10, 10, dtype=torch.int64)
        gt[:, :4] = 1
        if i == 2:
            gt[:] = 0
            gt[0, :5] = 1  # 5 px: small
        pred = torch.zeros(10, 10)
        pred[:, :cols] = 1
        samples.append(
            dict(
                pred_sem_seg=dict(data=pred[None]),
                gt_sem_seg=dict(data=gt[None]),
                ref_id=ref_id,
                sent_id=ref_id,
                image_id=0,
                text=f'the object | {ref_id}',
                category_id=i % 2))
    metric = RefSegIoUMetric(
        size_thresholds=(10, 100), output_file=str(path), **kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_compare_two_reports(tool, tmp_path):
    a, b = tmp_path / 'model_a.json', tmp_path / 'model_b.json'
    # A: I/U = 40/40, 20/40, 1/14 -> IoU 1, .5, 1/14
    make_report(a, (4, 2, 1))
    # B: I/U = 40/80, 40/40, 1/14 -> IoU .5, 1, 1/14
    metrics_b = make_report(b, (8, 4, 1))
    out = tmp_path / 'cmp.md'
    tool['main']([str(a), str(b), '--out', str(out), '--top-k', '2'])
    text = out.read_text()
    lines = text.splitlines()
    # overall: A oIoU 61/94, B 81/134; both mIoU 52.38, Pr@0.5 66.67
    assert ('| model_a | 3 | original resolution | IoU >= X | **64.89** | '
            '**52.38** | **66.67** | **33.33** |') in text
    assert ('| model_b | 3 | original resolution | IoU >= X | 60.45 | '
            '**52.38** | **66.67** | **33.33** |') in text
    assert metrics_b['oIoU'] == 60.45
    # per category (airplane = samples 0 and 2, ship = sample 1), oIoU
    start = lines.index('## Per category')
    assert lines[start + 2] == '**oIoU**'
    assert lines[start + 4:start + 8] == [
        '| category | samples | model_a | model_b |', '|---|---:|---:|---:|',
        '| airplane | 2 | **75.93** | 43.62 |',
        '| ship | 1 | 50.00 | **100.00** |'
    ]
    # per size: small = sample 2 (gt 5 px), medium = samples 0, 1
    assert '| small (area < 10) | 1 | **7.14** | **7.14** |' in text
    assert '| medium (10 <= area < 100) | 2 | **75.00** | 66.67 |' in text
    # largest differences: sample 0 (-50) and sample 1 (+50), dataset order
    assert '2 of 3 samples differ; mean |ΔIoU| = 33.33 points' in text
    diff = lines[lines.index(
        '## Largest per-sample IoU differences: model_b vs model_a') + 6:]
    assert diff[:3] == [
        '| 1 | 0 | 0 | the object \\| 0 | airplane | medium | 100.00 | '
        '50.00 | -50.00 |',
        '| 2 | 1 | 1 | the object \\| 1 | ship | medium | 50.00 | 100.00 | '
        '+50.00 |', ''
    ]
    # re-binning with other thresholds: every sample is large now
    text = tool['compare']([tool['load_report'](str(p)) for p in (a, b)],
                           ['A', 'B'],
                           metrics=['mIoU'],
                           size_thresholds=(2, 4),
                           top_k=0)
    assert '| large (area >= 4) | 3 | **52.38** | **52.38** |' in text
    assert 'differences' not in text


def test_different_samples_and_bad_files(tool, tmp_path):
    a, c = tmp_path / 'a.json', tmp_path / 'c.json'
    make_report(a, (4, 2, 1))
    make_report(c, (4, 2, 1), ref_ids=(0, 1, 7), eval_size=(20, 20))
    text = tool['compare']([tool['load_report'](str(p)) for p in (a, c)],
                           ['a', 'c'])
    assert '| c | 3 | 20x20 |' in text
    assert ('Skipped: the files hold different samples (1 of a not in c, '
            "1 of c not in a; e.g. ref_id=2 sent_id=2 text='the object | 2')"
            ) in text
    with pytest.raises(ValueError, match=r"unknown metrics \['Pr@0.55'\]"):
        tool['compare']([tool['load_report'](str(a))], ['a'], ['Pr@0.55'])
    # an edited summary is caught
    report = json.loads(a.read_text())
    report['summary']['mIoU'] = 99.0
    edited = tmp_path / 'edited.json'
    edited.write_text(json.dumps(report))
    with pytest.raises(
            ValueError, match='summary mIoU=99.0 but its 3 '
            'samples give 52.38'):
        tool['load_report'](str(edited))
    # a report of the overall-only format: tables skipped with a note
    for s in report['samples']:
        del s['category_id'], s['gt_area']
    report['summary']['mIoU'] = 52.38
    old = tmp_path / 'old.json'
    old.write_text(json.dumps(report))
    text = tool['compare']([tool['load_report'](str(old))], ['old'])
    assert 'Skipped: no per-sample `category_id` in old' in text
    assert 'Skipped: no per-sample `gt_area` in old' in text
    with pytest.raises(FileNotFoundError, match='no such report'):
        tool['load_report'](str(tmp_path / 'missing.json'))
    with pytest.raises(SystemExit, match='--names gives 1 names'):
        tool['main']([str(a), str(c), '--names', 'x'])


def test_compare_rsrefseg_and_rsrefseg2_reports(tool, vis_setup,
                                                rsrefseg2_setup, tmp_path,
                                                monkeypatch):
    """tools/test.py --out of a tiny RSRefSeg and a tiny RSRefSeg 2 on the
    same test split, compared sample by sample."""
    test_py = runpy.run_path(str(TOOL.parents[1] / 'test.py'))
    monkeypatch.setenv('LOCAL_RANK', '0')
    reports = {}
    for name, setup in (('rsrefseg', vis_setup), ('rsrefseg2',
                                                  rsrefseg2_setup)):
        reports[name] = tmp_path / f'{name}.json'
        monkeypatch.setattr('sys.argv', [
            'test.py', setup.config_file, setup.ckpt, '--work-dir',
            str(tmp_path / name), '--out',
            str(reports[name]), '--cfg-options',
            f'test_dataloader.dataset.data_root={rsrefseg2_setup.data_root}',
            f'visualizer.name=cmp_{name}_{tmp_path.name}'
        ])
        test_py['main']()
    out = tmp_path / 'cmp.md'
    tool['main']([
        str(reports['rsrefseg']),
        str(reports['rsrefseg2']), '--out',
        str(out)
    ])
    text = out.read_text()
    for name, path in reports.items():
        report = json.loads(path.read_text())
        summary = report['summary']
        row = next(line for line in text.splitlines()
                   if line.startswith(f'| {name} |'))
        cells = [c.strip(' *') for c in row.split('|')[1:-1]]
        # 2 synthetic test images x 4 expressions
        assert cells[1] == str(len(report['samples'])) == '8'
        assert cells[4:6] == [
            f"{summary['oIoU']:.2f}", f"{summary['mIoU']:.2f}"
        ]
    # same samples: the per-sample comparison is made
    assert ('## Largest per-sample IoU differences: rsrefseg2 vs rsrefseg'
            in text)
    assert 'Skipped: the files hold different samples' not in text
