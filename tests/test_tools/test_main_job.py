# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The main job end to end, on small synthetic data and tiny checkpoints.

Covers: a two-process ``tools/dist_train.sh`` smoke run (gloo on CPU), killing
a run mid-training and resuming it, training and testing through stock mmseg's
own ``tools/train.py`` / ``tools/test.py`` (only ``custom_imports``),
``tools/test.py`` on the real RRSIS-D sample, and RSRefSeg 2's quick start
(train / val / test and control through ``tools/dist_train.sh`` and
``tools/dist_test.sh``, two processes).
"""
import json
import os
import os.path as osp
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

import mmrsrefseg  # noqa: F401  (allow-lists mmengine checkpoint classes)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'rsrefseg_tiny_synthetic.py')
CONFIG2 = osp.join(REPO, 'configs', 'rsrefseg2_tiny_synthetic.py')
PY = sys.executable


def run(cmd, cwd=REPO, env=None, timeout=600):
    """Run ``cmd``; return its output; fail with the output on error."""
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=dict(os.environ, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def prepare_job(root, config):
    """Synthetic RRSIS-D, tiny checkpoints of ``config`` and the overriding
    cfg options, under ``root``."""
    data = root / 'data'
    run([
        PY,
        osp.join(REPO, 'tools/dataset_converters/make_synthetic_rrsisd.py'),
        str(data), '--num-train', '12', '--num-val', '4', '--num-test', '4',
        '--img-size', '128'
    ])
    clip_dir, sam_file = root / 'ckpt' / 'clip', root / 'ckpt' / 'sam.pth'
    weights = [
        f'model.backbone.pretrained={clip_dir}',
        f'model.decode_head.checkpoint={sam_file}'
    ]
    run([
        PY,
        osp.join(REPO, 'tools/misc/make_tiny_checkpoints.py'), config,
        '--cfg-options'
    ] + weights)
    options = weights + [
        f'{split}_dataloader.dataset.data_root={data}'
        for split in ('train', 'val', 'test')
    ] + [
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
        'test_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ]
    return dict(root=root, data=data, options=options)


@pytest.fixture(scope='module')
def job(tmp_path_factory):
    """RSRefSeg: synthetic RRSIS-D, tiny checkpoints, cfg options."""
    return prepare_job(tmp_path_factory.mktemp('main_job'), CONFIG)


@pytest.fixture(scope='module')
def job2(tmp_path_factory):
    """RSRefSeg 2: synthetic RRSIS-D, tiny checkpoints, cfg options."""
    return prepare_job(tmp_path_factory.mktemp('main_job2'), CONFIG2)


def schedule(max_iters, interval):
    return [
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={interval}',
        f'default_hooks.checkpoint.interval={interval}',
        f'param_scheduler.1.end={max_iters}',
        'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1',
    ]


def test_dist_train_smoke(job):
    """Two processes on CPU (gloo) through tools/dist_train.sh."""
    work = job['root'] / 'dist'
    out = run(
        [
            'bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir',
            str(work), '--cfg-options'
        ] + job['options'] + schedule(4, 2),
        env=dict(PORT='29531'))
    assert 'distributed run on CPU with gloo, rank 0 of 2' in out
    assert 'Iter(train) [4/4]' in out
    assert 'oIoU' in out and 'Pr@0.9' in out
    assert osp.isfile(work / 'iter_4.pth')
    best = [f for f in os.listdir(work) if f.startswith('best_mIoU')]
    assert len(best) == 1


def test_resume_after_kill(job):
    """A killed run resumes from its last checkpoint to the same end state."""
    work = job['root'] / 'resume'
    cmd = [
        PY, 'tools/train.py', CONFIG, '--work-dir',
        str(work), '--cfg-options'
    ] + job['options'] + schedule(10, 2) + [
        'randomness.seed=0', 'val_cfg=None', 'val_dataloader=None',
        'val_evaluator=None', 'default_hooks.checkpoint.save_best=None'
    ]
    cmd += ['default_hooks.checkpoint.max_keep_ckpts=-1']
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True)
    last = work / 'last_checkpoint'  # written once a checkpoint is complete

    def saved_iter():
        if not osp.isfile(last):
            return 0
        name = osp.basename(last.read_text().strip())
        return int(name[len('iter_'):-len('.pth')]) if name else 0

    deadline = time.time() + 300
    while saved_iter() < 4 and time.time() < deadline:
        assert proc.poll() is None, 'training ended before it was killed'
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = saved_iter()
    assert 4 <= killed_at < 10, f'killed after iteration {killed_at}'
    assert not osp.isfile(work / 'iter_10.pth'), 'killed too late'

    out = run(cmd + ['--resume'])
    assert f'resumed checkpoint from {work}/iter_{killed_at}.pth'.lower() \
        in out.lower() or f'iter_{killed_at}.pth' in out
    assert 'Iter(train) [10/10]' in out
    final = torch.load(work / 'iter_10.pth', map_location='cpu')
    assert final['meta']['iter'] == 10
    # the same schedule state as a run that was never interrupted
    ref_work = job['root'] / 'uninterrupted'
    ref_cmd = list(cmd)
    ref_cmd[ref_cmd.index(str(work))] = str(ref_work)
    run(ref_cmd)
    ref = torch.load(ref_work / 'iter_10.pth', map_location='cpu')
    lr = [g['lr'] for g in final['optimizer']['param_groups']]
    ref_lr = [g['lr'] for g in ref['optimizer']['param_groups']]
    assert lr == pytest.approx(ref_lr, rel=1e-9)
    assert final['param_schedulers'] == ref['param_schedulers']


def test_stock_mmseg_tools(job):
    """The config trains and tests through mmseg's own pip-installed tools."""
    import mmseg
    tools = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools')
    work = job['root'] / 'stock'
    out = run([
        PY,
        osp.join(tools, 'train.py'), CONFIG, '--work-dir',
        str(work), '--cfg-options'
    ] + job['options'] + schedule(2, 2))
    assert 'Iter(train) [2/2]' in out
    out = run([
        PY,
        osp.join(tools, 'test.py'), CONFIG,
        str(work / 'iter_2.pth'), '--work-dir',
        str(work / 'test'), '--cfg-options'
    ] + job['options'])
    assert 'oIoU' in out and 'mIoU' in out and 'Pr@0.5' in out
    job['checkpoint'] = str(work / 'iter_2.pth')


def test_tools_test_on_real_sample(job, rrsisd_sample, tmp_path):
    """tools/test.py on the real RRSIS-D sample at its original resolution."""
    ckpt = job.get('checkpoint')
    if ckpt is None:
        pytest.skip('needs the checkpoint of test_stock_mmseg_tools')
    out_json = tmp_path / 'results.json'
    show_dir = tmp_path / 'show'
    run([
        PY, 'tools/test.py', CONFIG, ckpt, '--work-dir',
        str(tmp_path), '--out',
        str(out_json), '--show-dir',
        str(show_dir), '--cfg-options'
    ] + job['options'] + [
        f'test_dataloader.dataset.data_root={rrsisd_sample}',
        'test_dataloader.dataset.split=test'
    ])
    result = json.loads(out_json.read_text())
    assert result['summary']['num_samples'] == 1
    assert result['summary']['protocol'] == 'original resolution'
    sample = result['samples'][0]
    assert sample['ref_id'] == 11765
    assert sample['text'] == 'A airplane at the bottom'
    # the metric counted at 800 x 800: the union holds at least the GT mask
    assert sample['union'] >= 10289
    assert result['checkpoint'] == ckpt and result['split'] == 'test'
    pictures = [
        f for _, _, fs in os.walk(show_dir) for f in fs if f.endswith('.png')
    ]
    assert len(pictures) == 1


def test_rsrefseg2_dist_train_val_test(job2):
    """RSRefSeg 2's quick start: train + validate with two processes, then
    test on the test and control splits, through the dist scripts."""
    work = job2['root'] / 'dist'
    out = run(
        [
            'bash', 'tools/dist_train.sh', CONFIG2, '2', '--work-dir',
            str(work), '--cfg-options'
        ] + job2['options'] + schedule(4, 2),
        env=dict(PORT='29551'))
    assert 'distributed run on CPU with gloo, rank 0 of 2' in out
    assert 'Iter(train) [4/4]' in out
    assert 'loss_info_nce' in out and 'loss_query_decorrelation' in out
    assert out.count('Iter(val)') >= 2 and 'Pr@0.9' in out
    best = [f for f in os.listdir(work) if f.startswith('best_mIoU')]
    assert len(best) == 1
    with open(job2['data'] / 'rrsisd' / 'refs(unc).p', 'rb') as f:
        refs = pickle.load(f)
    for split in ('test', 'control'):
        result = job2['root'] / f'results_{split}.json'
        out = run(
            [
                'bash', 'tools/dist_test.sh', CONFIG2,
                str(work / best[0]), '2', '--work-dir',
                str(job2['root'] / f'test_{split}'), '--out',
                str(result), '--cfg-options'
            ] + job2['options'] + [f'test_dataloader.dataset.split={split}'],
            env=dict(PORT='29553'))
        assert 'oIoU' in out and 'mIoU' in out
        summary = json.loads(result.read_text())
        assert summary['split'] == split
        # every ref of the split once, gathered from both processes
        expected = sorted(r['ref_id'] for r in refs if r['split'] == split)
        assert sorted(s['ref_id'] for s in summary['samples']) == expected
        assert summary['summary']['num_samples'] == len(expected)
