# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegRS- and RISBench-layout fixtures train and test through
tools/dist_train.sh and tools/dist_test.sh (2 processes, gloo on CPU).

The model is the tiny embedded default (configs/rsrefseg_tiny_synthetic.py,
random tiny checkpoints from tools/misc/make_tiny_checkpoints.py); the
fixtures are real TIFF files in the native layouts
(tests/utils/native_layouts.py).
"""
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

from utils import native_layouts

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / 'configs' / 'rsrefseg_tiny_synthetic.py'
PY = sys.executable


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


def _samples(key):
    """4 train, 1 val and 2 test lines of 48 x 64 images, RefSegRS ids
    (``key='id'``) or RISBench file names (``key='file'``)."""
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


def _datasets(split, pipeline, test_mode):
    # both layouts in one run: one process start-up for train, one for test
    return dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='RefSegRSDataset',
                data_root={refsegrs!r},
                ann_file=f'output_phrase_{{split}}.txt',
                test_mode=test_mode,
                pipeline=pipeline),
            dict(
                type='RISBenchDataset',
                data_root={risbench!r},
                ann_file=f'output_phrase_{{split}}.txt',
                test_mode=test_mode,
                pipeline=pipeline)
        ])


train_dataloader = dict(
    dataset=_datasets('train', {{{{_base_.train_pipeline}}}}, False))
val_dataloader = dict(
    dataset=_datasets('val', {{{{_base_.test_pipeline}}}}, True))
test_dataloader = dict(
    dataset=_datasets('test', {{{{_base_.test_pipeline}}}}, True))
"""


def test_dist_train_and_test(tiny_tools, tmp_path):
    """Train 2 iterations + validate, then test, on both layouts at once."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(TINY))
    clip_dir, sam_file = tmp_path / 'clip', tmp_path / 'sam.pth'
    tiny_tools.save_clip(cfg.model.backbone.to_dict(), str(clip_dir), 0)
    tiny_tools.save_sam(cfg.model.decode_head.to_dict(), str(sam_file), 1)
    roots = dict(
        refsegrs=tmp_path / 'RefSegRS', risbench=tmp_path / 'RISBench')
    native_layouts.make_refsegrs(roots['refsegrs'], _samples('id'))
    native_layouts.make_risbench(roots['risbench'], _samples('file'))
    config = tmp_path / 'tiny_native_layouts.py'
    config.write_text(
        CONFIG.format(
            tiny=str(TINY),
            refsegrs=str(roots['refsegrs']),
            risbench=str(roots['risbench'])))
    options = [
        f'model.backbone.pretrained={clip_dir}',
        f'model.decode_head.checkpoint={sam_file}',
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=1',
        'test_dataloader.batch_size=1', 'default_hooks.logger.interval=1',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.checkpoint.save_best=None', 'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1', 'param_scheduler.1.end=2'
    ] + [
        f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
        for key in ('num_workers=0', 'persistent_workers=False')
    ]
    work = tmp_path / 'work'
    out = run(
        [
            'bash', 'tools/dist_train.sh',
            str(config), '2', '--work-dir',
            str(work), '--cfg-options'
        ] + options,
        env=dict(PORT='29541', PYTHON=PY))
    assert 'distributed run on CPU with gloo, rank 0 of 2' in out
    # 4 + 4 train lines, 2 processes x batch 2: 2 iterations per epoch
    assert 'Iter(train) [2/2]' in out
    assert 'Iter(val) [1/1]' in out  # 1 + 1 val lines, one per process
    assert 'oIoU' in out and 'Pr@0.9' in out
    assert osp.isfile(work / 'iter_2.pth')

    result = tmp_path / 'results.json'
    out = run(
        [
            'bash', 'tools/dist_test.sh',
            str(config),
            str(work / 'iter_2.pth'), '2', '--work-dir',
            str(tmp_path / 'test'), '--out',
            str(result), '--show-dir',
            str(tmp_path / 'show'), '--cfg-options'
        ] + options,
        env=dict(PORT='29543', PYTHON=PY))
    assert 'oIoU' in out and 'mIoU' in out
    summary = json.loads(result.read_text())
    assert summary['summary']['num_samples'] == 4
    samples = summary['samples']
    # RefSegRS test lines, then RISBench test lines (ConcatDataset order)
    assert [s['text'] for s in samples
            ] == ['the object number 5', 'the object number 6'] * 2
    assert [s['ref_id'] for s in samples] == [0, 1, 0, 1]
    # RefSegRS: the id; RISBench: first appearance of the file name
    assert [s['image_id'] for s in samples] == [5, 6, 0, 1]
    # the metric counted at the original 48 x 64: the union holds the
    # 21 x 23 ground-truth rectangle
    assert all(s['union'] >= 21 * 23 for s in samples)
    # drawn without a category: mmengine's visualiser draws on rank 0 only,
    # i.e. concatenated samples 0 and 2, ref 0 of each dataset; the hook
    # names pictures by ref / sent id, which the two datasets share
    pictures = [
        f for _, _, fs in os.walk(tmp_path / 'show') for f in fs
        if f.endswith('.png')
    ]
    assert pictures and all(
        f.startswith('test_ref0_sent0_') for f in pictures), pictures
