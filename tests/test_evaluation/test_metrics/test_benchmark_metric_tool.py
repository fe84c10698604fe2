# Copyright (c) mmrsrefseg contributors. All rights reserved.
import runpy
import sys
from pathlib import Path

TOOL = Path(__file__).parents[3] / 'tools/analysis_tools/benchmark_metric.py'


def test_benchmark_metric_tool_runs(monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', [
        str(TOOL), '--num-samples', '5', '--size', '16', '--eval-size', '8',
        '--batch-size', '2', '--pool', '3'
    ])
    runpy.run_path(str(TOOL), run_name='__main__')
    out = capsys.readouterr().out
    assert 'samples: 5  size: 16x16  protocol: 8x8' in out
    assert 'samples/s' in out and "'oIoU'" in out
