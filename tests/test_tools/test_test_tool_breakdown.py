# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/test.py --out on the synthetic RRSIS-D: per-category and per-size
tables in the log and the JSON, overall numbers independent of them."""
import json
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'rsrefseg_tiny_synthetic.py')
PY = sys.executable


def run(cmd):
    """Run ``cmd`` in the repository; return its output; fail on error."""
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


@pytest.fixture(scope='module')
def setup(tmp_path_factory, tiny_tools):
    """Synthetic data (6 test images), tiny checkpoints and a randomly
    initialised RSRefSeg-tiny checkpoint (written in-process: one
    interpreter start less)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmrsrefseg  # noqa: F401
    root = tmp_path_factory.mktemp('test_tool')
    data = root / 'data'
    run([
        PY, 'tools/dataset_converters/make_synthetic_rrsisd.py',
        str(data), '--num-train', '1', '--num-val', '1', '--num-test', '6',
        '--img-size', '96'
    ])
    weights = {
        'model.backbone.pretrained': str(root / 'clip'),
        'model.decode_head.checkpoint': str(root / 'sam.pth')
    }
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(weights)
    init_default_scope('mmseg')
    tiny_tools.save_clip(cfg.model.backbone.to_dict(), str(root / 'clip'), 0)
    tiny_tools.save_sam(cfg.model.decode_head.to_dict(), str(root / 'sam.pth'),
                        1)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = root / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    options = [f'{k}={v}' for k, v in weights.items()] + [
        f'test_dataloader.dataset.data_root={data}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ]
    return dict(root=root, ckpt=str(ckpt), options=options)


def test_tools_test_writes_breakdown(setup):
    from mmrsrefseg.datasets.rrsisd_dataset import RRSISD_CLASSES
    from mmrsrefseg.evaluation.functional import refseg_scores
    root = setup['root']
    out = root / 'results.json'
    log = run([
        PY, 'tools/test.py', CONFIG, setup['ckpt'], '--work-dir',
        str(root / 'work'), '--out',
        str(out), '--cfg-options'
    ] + setup['options'])
    report = json.loads(out.read_text())
    assert 'per-category results:' in log
    assert 'per-size results' in log and 'GT area (px)' in log

    samples, summary = report['samples'], report['summary']
    assert len(samples) == summary['num_samples'] >= 12
    # the overall numbers are those of all samples, breakdown or not
    overall = refseg_scores([s['intersection'] for s in samples],
                            [s['union'] for s in samples])
    assert {k: summary[k] for k in overall} == overall
    for s in samples:
        assert s['category'] == RRSISD_CLASSES[s['category_id']]
        assert s['size'] in ('small', 'medium', 'large')
        assert s['gt_area'] > 0 and isinstance(s['sent_id'], int)
    rows = report['by_category']
    assert [r['category_id']
            for r in rows] == sorted({s['category_id']
                                      for s in samples})
    assert sum(r['num_samples'] for r in rows) == len(samples)
    assert sum(r['num_samples'] for r in report['by_size']) == len(samples)
    for row in rows:  # every category appears in the logged table
        assert f'| {row["category"]}' in log
        members = [
            s for s in samples if s['category_id'] == row['category_id']
        ]
        expected = refseg_scores([s['intersection'] for s in members],
                                 [s['union'] for s in members])
        assert {k: row[k] for k in expected} == expected
    # compare_results rebuilds the same tables from the samples
    tool = runpy.run_path(
        osp.join(REPO, 'tools', 'analysis_tools', 'compare_results.py'))
    loaded = tool['load_report'](str(out))
    text = tool['compare']([loaded, loaded], ['a', 'b'])
    assert f'| a | {len(samples)} | original resolution |' in text
    assert f'0 of {len(samples)} samples differ' in text
    first = rows[0]
    assert (f'| {first["category"]} | {first["num_samples"]} | '
            f'**{first["oIoU"]:.2f}** | **{first["oIoU"]:.2f}** |') in text
