# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/analysis_tools/benchmark.py: the table, the ratios, a real run."""
import runpy
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from mmengine.config import Config

from mmrsrefseg.testing import tiny_siglip_rsrefseg_cfg

REPO = Path(__file__).parents[2]
TOOL = REPO / 'tools/analysis_tools/benchmark.py'


@pytest.fixture(scope='module')
def tool():
    return runpy.run_path(str(TOOL))


def result(model, rows):
    return dict(
        model=model,
        size=1024,
        device='cuda',
        device_name='GPU X',
        torch='2.x',
        precision='bf16 autocast',
        matmul_peak=800e12,
        rows=[
            dict(
                mode=mode,
                batch=batch,
                flops_per_image=flops,
                s_step=s,
                peak_gib=peak,
                peak_reset=True) for mode, batch, flops, s, peak in rows
        ],
        profiles={'train batch 8': 'KERNEL TABLE'})


def test_table_ratios_and_oom(tool, capsys):
    ours = result('ours', [('train', 1, 5e12, 0.25, 8.5),
                           ('train', 8, 5e12, 0.5, 29.0),
                           ('infer', 1, 2e12, 0.1, 3.0),
                           ('infer', 8, 2e12, None, 140.0)])
    theirs = result('authors', [('train', 1, 4e12, 0.5, 9.9),
                                ('train', 8, 4e12, None, 139.0),
                                ('infer', 1, 1.6e12, 0.05, 4.0),
                                ('infer', 8, 1.6e12, 0.2, 30.0)])
    args = Namespace(config='cfg.py', compare_authors=True)
    tool['print_table'](args, [ours, theirs])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == ('cfg.py: GPU X, torch 2.x, 1024x1024, bf16 autocast; '
                        'matmul peak 800.0 TFLOP/s')
    row = next(
        line for line in lines
        if line.startswith('ours     train') and ' 1 ' in line).split()
    # images/s 4, s/step 0.25, 5 TFLOP/img counted, MFU on the authors'
    # 4 TFLOP: 4e12 / 0.25 / 800e12 = 2 %
    assert row[-5:] == ['4.000', '0.250', '5', '2.0%', '8.5']
    oom = next(
        line for line in lines
        if line.startswith('ours     inference') and ' 8 ' in line)
    assert 'OOM' in oom and oom.split()[-1] == '140.0'
    assert '  train (fwd+bwd+AdamW)   batch   1: 2.00x' in lines
    assert '  train (fwd+bwd+AdamW)   batch   8: OOM (authors)' in lines
    assert '  inference               batch   1: 0.50x' in lines
    assert '  inference               batch   8: OOM (ours)' in lines
    assert ('speed-up vs authors (batch 1): train 2.00x, inference 0.50x; '
            'peak memory: ours 8.5 GiB, authors 9.9 GiB') in lines
    assert 'top kernels: ours, train batch 8' in out
    assert out.count('KERNEL TABLE') == 2


def test_compare_authors_on_cpu(tmp_path):
    """Both models built once, two batch sizes, the profile, on CPU."""
    cfg = tiny_siglip_rsrefseg_cfg('unused-tokenizer', vocab_size=64)
    cfg['test_cfg'] = dict(mode='whole')
    path = tmp_path / 'tiny_siglip.py'
    Config(
        dict(
            model=cfg,
            custom_imports=dict(
                imports=['mmrsrefseg'],
                allow_failed_imports=False))).dump(str(path))
    out = subprocess.run([
        sys.executable,
        str(TOOL),
        str(path), '--compare-authors', '--device', 'cpu', '--batch-size', '1',
        '2', '--warmup', '1', '--iters', '1', '--profile', '--profile-rows',
        '2'
    ],
                         cwd=REPO,
                         capture_output=True,
                         text=True,
                         check=True).stdout
    lines = out.splitlines()
    rows = [
        line.split() for line in lines
        if line.startswith(('ours ', 'authors '))
    ]
    assert [(r[0], r[1], r[-6])
            for r in rows] == [(model, mode, batch)
                               for model in ('ours', 'authors')
                               for mode in ('train', 'inference')
                               for batch in ('1', '2')]
    for r in rows:
        # images/s = batch / (s/step), s/step as printed (rounded)
        batch, ips, step = float(r[-6]), float(r[-5]), r[-4]
        half_ulp = 0.5 * 10**-len(step.partition('.')[2])
        assert batch / (float(step) + half_ulp) <= ips * 1.01
        assert ips <= 1.01 * batch / max(float(step) - half_ulp, 1e-12)
        assert float(r[-3]) > 0  # FLOPs counted
    assert sum('speed-up vs authors (batch' in line for line in lines) == 2
    assert out.count('top kernels:') == 4
