# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegRS- and RISBench-layout fixtures train and test through
tools/dist_train.sh and tools/dist_test.sh (2 processes, gloo on CPU).

The model is the tiny embedded default (configs/rsrefseg_tiny_synthetic.py,
random tiny checkpoints from tools/misc/make_tiny_checkpoints.py); the
fixtures are real TIFF files in the native layouts
(tests/test_datasets/native_layout_utils.py).
"""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / 'configs' / 'rsrefseg_tiny_synthetic.py'
PY = sys.executable


def _layout_utils():
    path = REPO / 'tests' / 'test_datasets' / 'native_layout_utils.py'
    spec = importlib.util.spec_from_file_location('native_layout_utils',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(cmd, env=None, timeout=300):
    """Run ``cmd`` in the repository; return its output; fail on error."""
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=dict(os.environ, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


#: A dataset of each layout; 4 train lines (2 processes x batch 2).
def _samples(key):
    samples = []
    for k, split in enumerate(['train'] * 4 + ['val', 'test', 'test']):
        name = f'{k}' if key == 'id' else f'P{k:04d}_0001.tif'
        samples.append({
            key: name,
            'split': split,
            'text': f'the object number {k}',
            'img_hw': (48, 64),
            'rect': (4 * k, 8, 4 * k + 20, 30)
        })
    return samples


CONFIG = """_base_ = [{tiny!r}]
_dataset = dict(_delete_=True, type={type!r}, data_root={root!r})
train_dataloader = dict(dataset=dict(
    _dataset, ann_file='output_phrase_train.txt',
    pipeline={{{{_base_.train_pipeline}}}}))
val_dataloader = dict(dataset=dict(
    _dataset, ann_file='output_phrase_val.txt', test_mode=True,
    pipeline={{{{_base_.test_pipeline}}}}))
test_dataloader = dict(dataset=dict(
    _dataset, ann_file='output_phrase_test.txt', test_mode=True,
    pipeline={{{{_base_.test_pipeline}}}}))
"""


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp('native_dist')
    weights = [
        f'model.backbone.pretrained={root / "clip"}',
        f'model.decode_head.checkpoint={root / "sam.pth"}'
    ]
    run([
        PY,
        str(REPO / 'tools/misc/make_tiny_checkpoints.py'),
        str(TINY), '--cfg-options'
    ] + weights)
    return root, weights


@pytest.mark.parametrize('layout,port', [('refsegrs', 29541),
                                         ('risbench', 29543)])
def test_dist_train_and_test(layout, port, tiny_weights, tmp_path):
    _, weights = tiny_weights
    utils = _layout_utils()
    root = tmp_path / layout
    if layout == 'refsegrs':
        utils.make_refsegrs(root, _samples('id'))
        dataset_type = 'RefSegRSDataset'
    else:
        utils.make_risbench(root, _samples('file'))
        dataset_type = 'RISBenchDataset'
    config = tmp_path / f'tiny_{layout}.py'
    config.write_text(
        CONFIG.format(tiny=str(TINY), type=dataset_type, root=str(root)))
    options = weights + [
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=1',
        'test_dataloader.batch_size=1', 'default_hooks.logger.interval=1',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2', 'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1', 'param_scheduler.1.end=2'
    ] + [
        f'{split}_dataloader.{key}'
        for split in ('train', 'val', 'test')
        for key in ('num_workers=0', 'persistent_workers=False')
    ]
    work = tmp_path / 'work'
    out = run(['bash', 'tools/dist_train.sh',
               str(config), '2', '--work-dir',
               str(work), '--cfg-options'] + options,
              env=dict(PORT=str(port)))
    assert 'distributed run on CPU with gloo, rank 0 of 2' in out
    assert 'Iter(train) [2/2]' in out
    assert 'oIoU' in out and 'Pr@0.9' in out
    assert osp.isfile(work / 'iter_2.pth')

    result = tmp_path / 'results.json'
    out = run([
        'bash', 'tools/dist_test.sh',
        str(config),
        str(work / 'iter_2.pth'), '2', '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(result), '--show-dir',
        str(tmp_path / 'show'), '--cfg-options'
    ] + options,
              env=dict(PORT=str(port + 1)))
    assert 'oIoU' in out and 'mIoU' in out
    summary = json.loads(result.read_text())
    assert summary['summary']['num_samples'] == 2
    samples = sorted(summary['samples'], key=lambda s: s['ref_id'])
    assert [s['ref_id'] for s in samples] == [0, 1]
    assert [s['text'] for s in samples] == [
        'the object number 5', 'the object number 6'
    ]
    # RefSegRS: the id; RISBench: first appearance of the file name
    expected_ids = [5, 6] if layout == 'refsegrs' else [0, 1]
    assert [s['image_id'] for s in samples] == expected_ids
    # the metric counted at the original 48 x 64: the union holds the
    # 21 x 23 ground-truth rectangle
    assert all(s['union'] >= 21 * 23 for s in samples)
    pictures = [
        f for _, _, fs in os.walk(tmp_path / 'show') for f in fs
        if f.endswith('.png')
    ]
    assert len(pictures) == 2
