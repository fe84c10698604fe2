# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/test.py loads checkpoints strictly and checks --out first.

A checkpoint that does not fit the model (empty, partial, of another
architecture, not a torch file) stops the run before any sample is scored,
with a message naming the file and the keys (the first few and the count);
``--non-strict`` evaluates anyway and the leaderboard JSON says so. An
``--out`` path that cannot be written is an argument error before any work.
"""
import copy
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from utils.tiny_refseg import REPO_ROOT

from mmrsrefseg.evaluation.metrics import RefSegIoUMetric


@pytest.fixture(scope='module')
def test_tool():
    """tools/test.py as a module (``main()`` reads ``sys.argv``)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'refseg_test_tool_strict', REPO_ROOT / 'tools' / 'test.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def own_visualizer(tmp_path):
    """Options giving the run a visualiser of its own (mmengine shares
    visualisers by name, and the config file is shared)."""
    return ['--cfg-options', f'visualizer.name=vis_{tmp_path.name}']


def state_of(path):
    return torch.load(path, map_location='cpu')['state_dict']


def build_state(cfg, **head_overrides):
    """State dict of the tiny model with ``decode_head`` overrides."""
    init_default_scope('mmseg')
    model_cfg = copy.deepcopy(cfg.model)
    for key, value in head_overrides.items():
        model_cfg.decode_head[key].update(value)
    torch.manual_seed(0)
    return MODELS.build(model_cfg).state_dict()


@pytest.fixture(scope='module')
def bad_checkpoints(vis_setup, tmp_path_factory):
    """Checkpoint files that do not fit the tiny model, each with what the
    error must name: ``{name: (path, [regex, ...])}``."""
    root = tmp_path_factory.mktemp('bad_checkpoints')
    good = state_of(vis_setup.ckpt)
    files = {}

    def save(name, obj, patterns):
        path = root / f'{name}.pth'
        torch.save(obj, path)
        files[name] = (str(path), patterns)

    # every key missing: the count and the first five names, then '...'
    first = [re.escape(k) for k in list(good)[:5]]
    save('empty', {},
         [rf'missing keys \({len(good)}\): ' + ', '.join(first) + r', \.\.\.'])
    # the prompter left out
    neck = [k for k in good if k.startswith('neck.')]
    partial = {k: v for k, v in good.items() if not k.startswith('neck.')}
    save('partial', dict(state_dict=partial, meta={}),
         [rf'missing keys \({len(neck)}\): {re.escape(neck[0])}'])
    # SAM's image encoder one block deeper: unexpected keys
    deeper = build_state(vis_setup.cfg, encoder_cfg=dict(depth=3))
    extra = [k for k in deeper if k not in good]
    assert extra and all('image_encoder.blocks.2.' in k for k in extra)
    save('other_depth', dict(state_dict=deeper, meta={}),
         [rf'unexpected keys \({len(extra)}\): {re.escape(extra[0])}'])
    # SAM's decoder MLPs twice as wide: mis-shaped keys, both shapes given
    wider = build_state(vis_setup.cfg, decoder_cfg=dict(mlp_dim=512))
    shaped = [k for k in good if wider[k].shape != good[k].shape]
    assert shaped
    save('mis_shaped', dict(state_dict=wider, meta={}), [
        rf'mis-shaped keys \({len(shaped)}\): {re.escape(shaped[0])} '
        rf'\(checkpoint \({wider[shaped[0]].shape[0]}, '
    ])
    text = root / 'text.pth'
    text.write_text('not a checkpoint\n')
    files['text'] = (str(text), ['Cannot read checkpoint', 'not a complete'])
    zero = root / 'zero.pth'
    zero.write_bytes(b'')
    files['zero_bytes'] = (str(zero), [r'is empty \(0 bytes\)'])
    return files


@pytest.fixture
def no_scoring(monkeypatch):
    """Make scoring a sample fail the test."""

    def scored(self, data_batch, data_samples):
        raise AssertionError('a sample was scored')

    monkeypatch.setattr(RefSegIoUMetric, 'process', scored)
    monkeypatch.setenv('LOCAL_RANK', '0')


@pytest.mark.parametrize(
    'name',
    ['empty', 'partial', 'other_depth', 'mis_shaped', 'text', 'zero_bytes'])
def test_bad_checkpoint_stops_before_scoring(test_tool, vis_setup,
                                             bad_checkpoints, no_scoring,
                                             tmp_path, monkeypatch, name):
    path, patterns = bad_checkpoints[name]
    out = tmp_path / 'results.json'
    monkeypatch.setattr('sys.argv', [
        'test.py', vis_setup.config_file, path, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), *own_visualizer(tmp_path)
    ])
    # StateDictError (a KeyError and a ValueError) or ValueError
    with pytest.raises(ValueError) as info:
        test_tool.main()
    message = str(info.value)
    assert path in message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    assert not out.exists()


def test_bad_checkpoint_exit_status(vis_setup, bad_checkpoints, tmp_path):
    """The command itself: exit status 1, the message on stderr, no metric
    and no results file."""
    path, patterns = bad_checkpoints['empty']
    out = tmp_path / 'results.json'
    proc = subprocess.run([
        sys.executable,
        str(REPO_ROOT / 'tools' / 'test.py'), vis_setup.config_file, path,
        '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out)
    ],
                          cwd=REPO_ROOT,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'StateDictError' in proc.stderr and path in proc.stderr
    assert re.search(patterns[0], proc.stderr)
    log = proc.stdout + proc.stderr
    assert 'oIoU' not in log and 'Iter(test)' not in log
    assert not out.exists()


def test_non_strict_evaluates_and_says_so(test_tool, vis_setup,
                                          bad_checkpoints, tmp_path,
                                          monkeypatch):
    path, _ = bad_checkpoints['partial']
    out = tmp_path / 'results.json'
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr('sys.argv', [
        'test.py', vis_setup.config_file, path, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), '--non-strict', *own_visualizer(tmp_path)
    ])
    test_tool.main()
    report = json.loads(out.read_text())
    assert report['strict_load'] is False
    assert report['checkpoint'] == path
    assert report['summary']['num_samples'] == len(report['samples']) > 0


def test_strict_load_recorded(test_tool, vis_setup, tmp_path, monkeypatch):
    out = tmp_path / 'results.json'
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr('sys.argv', [
        'test.py', vis_setup.config_file, vis_setup.ckpt, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), *own_visualizer(tmp_path)
    ])
    test_tool.main()
    assert json.loads(out.read_text())['strict_load'] is True


@pytest.mark.parametrize('case', ['directory', 'under_file', 'unwritable'])
def test_bad_out_path_is_an_argument_error(test_tool, vis_setup, tmp_path,
                                           monkeypatch, capsys, case):
    if case == 'directory':
        out, expected = tmp_path, 'is a directory'
    elif case == 'under_file':
        (tmp_path / 'file').write_text('x')
        out, expected = tmp_path / 'file' / 'sub' / 'r.json', 'is a file'
    else:
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o500)
        if os.access(locked, os.W_OK):  # root ignores the mode bits
            locked = '/proc/self'  # procfs lets no one create files there
        out, expected = f'{locked}/r.json', 'is not writable'
    work = tmp_path / 'work'
    # the checkpoint does not exist: --out is checked before anything else
    monkeypatch.setattr('sys.argv', [
        'test.py', vis_setup.config_file,
        str(tmp_path / 'missing.pth'), '--work-dir',
        str(work), '--out',
        str(out)
    ])
    with pytest.raises(SystemExit) as info:
        test_tool.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f'--out {out}' in err and expected in err
    assert not work.exists()
