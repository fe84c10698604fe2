# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Trained-only checkpoints through the tools: merge / extract
(tools/model_converters/refseg_trained_weights.py) and tools/test.py, on
checkpoints written by a real (tiny) training run."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from utils.tiny_refseg import REPO_ROOT

from mmrsrefseg.evaluation.metrics import RefSegIoUMetric
from mmrsrefseg.models.utils import TRAINED_ONLY_KEY
from mmrsrefseg.utils.checkpoint import StateDictError

TOOL = REPO_ROOT / 'tools' / 'model_converters' / 'refseg_trained_weights.py'


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_module(TOOL, 'refseg_trained_weights')


@pytest.fixture(scope='module')
def test_tool():
    return load_module(REPO_ROOT / 'tools' / 'test.py', 'refseg_test_tool')


def load(path):
    return torch.load(path, map_location='cpu')


def assert_same_tree(a, b):
    """Nested dicts / lists / tensors equal (tensors bit for bit)."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same_tree(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tree(x, y)
    elif torch.is_tensor(a):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


def assert_same_state(a, b):
    assert list(a) == list(b)
    for key, value in a.items():
        assert value.dtype == b[key].dtype, key
        assert torch.equal(value, b[key]), key


@pytest.fixture(scope='module')
def merged(trained_only_run, tmp_path_factory):
    """The trained-only checkpoint of iteration 4 merged by the command."""
    dst = tmp_path_factory.mktemp('merged') / 'full.pth'
    proc = subprocess.run([
        sys.executable,
        str(TOOL), 'merge', trained_only_run.config_file,
        trained_only_run.ckpts[4],
        str(dst)
    ],
                          cwd=REPO_ROOT,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'wrote a full checkpoint of' in proc.stdout
    return str(dst)


def test_help(tool, capsys):
    for argv in (['--help'], ['merge', '--help'], ['extract', '--help']):
        with pytest.raises(SystemExit) as info:
            tool.parse_args(argv)
        assert info.value.code == 0
    text = capsys.readouterr().out
    assert 'merge' in text and 'extract' in text and '--cfg-options' in text


def test_merge_gives_the_trained_model(trained_only_run, merged):
    ckpt, trained = load(merged), load(trained_only_run.ckpts[4])
    full = load(trained_only_run.full)['state_dict']
    assert TRAINED_ONLY_KEY not in ckpt['meta']
    assert_same_state(ckpt['state_dict'], full)
    # everything but the weights is kept (it resumes as the original would)
    assert ckpt.keys() == trained.keys()
    assert_same_tree(ckpt['optimizer'], trained['optimizer'])
    assert ckpt['param_schedulers'] == trained['param_schedulers']
    assert ckpt['meta'] == {
        k: v
        for k, v in trained['meta'].items() if k != TRAINED_ONLY_KEY
    }


def test_extract_reverses_merge_exactly(trained_only_run, merged, tool,
                                        tmp_path):
    dst = tmp_path / 'trained.pth'
    tool.main(['extract', trained_only_run.config_file, merged, str(dst)])
    got, trained = load(dst), load(trained_only_run.ckpts[4])
    assert_same_state(got['state_dict'], trained['state_dict'])
    assert got['meta'] == trained['meta']
    assert_same_tree(got['optimizer'], trained['optimizer'])
    # and merge(extract(full)) is the full checkpoint again
    again = tmp_path / 'full.pth'
    tool.main(['merge', trained_only_run.config_file, str(dst), str(again)])
    assert_same_state(load(again)['state_dict'], load(merged)['state_dict'])


def test_extract_refuses_another_base(trained_only_run, tool, tmp_path):
    """A frozen tensor that is not the base's: the trained-only result would
    not give this model back."""
    ckpt = load(trained_only_run.full)
    key = 'backbone.model.text_model.embeddings.token_embedding.weight'
    ckpt['state_dict'][key] = ckpt['state_dict'][key] + 1
    src = tmp_path / 'other_base.pth'
    torch.save(ckpt, src)
    dst = tmp_path / 'x.pth'
    with pytest.raises(StateDictError) as info:
        tool.main(
            ['extract', trained_only_run.config_file,
             str(src),
             str(dst)])
    message = str(info.value)
    assert f'{src}: frozen pretrained tensors differ from the base' in message
    assert f'keys (1): {key}' in message
    assert trained_only_run.cfg.model.backbone.pretrained in message
    assert not dst.exists()


def test_merge_and_extract_refuse_the_wrong_kind(trained_only_run, tool,
                                                 tmp_path):
    with pytest.raises(ValueError, match='is not a trained-only checkpoint'):
        tool.main([
            'merge', trained_only_run.config_file, trained_only_run.full,
            str(tmp_path / 'x.pth')
        ])
    with pytest.raises(ValueError, match='is a trained-only checkpoint'):
        tool.main([
            'extract', trained_only_run.config_file, trained_only_run.ckpts[4],
            str(tmp_path / 'x.pth')
        ])


def test_merge_is_strict(trained_only_run, tool, tmp_path):
    ckpt = load(trained_only_run.ckpts[4])
    key = 'decode_head.mask_decoder.output_upscaling.0.weight'
    del ckpt['state_dict'][key]  # trained: the base does not give it
    src = tmp_path / 'partial.pth'
    torch.save(ckpt, src)
    with pytest.raises(StateDictError, match=rf'missing keys \(1\): {key}'):
        tool.main([
            'merge', trained_only_run.config_file,
            str(src),
            str(tmp_path / 'x.pth')
        ])


def run_test_tool(test_tool, monkeypatch, tmp_path, config, ckpt, *options):
    """tools/test.py in this process; return its leaderboard JSON."""
    out = tmp_path / 'results.json'
    monkeypatch.setenv('LOCAL_RANK', '0')
    # a visualiser of its own (mmengine shares visualisers by name)
    options = list(options) or ['--cfg-options']
    options.append(f'visualizer.name=vis_{tmp_path.parent.name}_'
                   f'{tmp_path.name}')
    monkeypatch.setattr('sys.argv', [
        'test.py', config, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out)
    ] + options)
    test_tool.main()
    return json.loads(out.read_text())


def test_tools_test_evaluates_trained_only(trained_only_run, merged, test_tool,
                                           tmp_path, monkeypatch):
    config = trained_only_run.config_file
    trained = run_test_tool(test_tool, monkeypatch, tmp_path / 'a', config,
                            trained_only_run.ckpts[4])
    full = run_test_tool(test_tool, monkeypatch, tmp_path / 'b', config,
                         merged)
    assert trained['summary']['num_samples'] > 0
    assert trained['summary'] == full['summary']
    assert trained['samples'] == full['samples']
    assert trained['strict_load'] is True


@pytest.fixture
def no_scoring(monkeypatch):

    def scored(self, data_batch, data_samples):
        raise AssertionError('a sample was scored')

    monkeypatch.setattr(RefSegIoUMetric, 'process', scored)


def test_tools_test_base_without_weights(trained_only_run, test_tool, tmp_path,
                                         monkeypatch, no_scoring):
    """A frozen key neither in the checkpoint nor in a base: named."""
    with pytest.raises(StateDictError) as info:
        run_test_tool(test_tool, monkeypatch, tmp_path,
                      trained_only_run.config_file, trained_only_run.ckpts[4],
                      '--cfg-options', 'model.backbone.pretrained=None')
    message = str(info.value)
    assert f'Checkpoint {trained_only_run.ckpts[4]} does not fit' in message
    assert 'a trained-only checkpoint' in message
    sam = trained_only_run.cfg.model.decode_head.checkpoint
    assert f'[decode_head: {sam}]' in message
    assert 'missing' in message
    assert 'backbone.model.text_model.embeddings.token_embedding.weight' \
        in message or 'backbone.model.logit_scale' in message


def test_tools_test_base_of_another_size(trained_only_run, tiny_tools,
                                         test_tool, tmp_path, monkeypatch,
                                         no_scoring):
    """The config points at a SAM with a wider image encoder: the error
    names the SAM file and the mis-shaped keys."""
    head = trained_only_run.cfg.model.decode_head.to_dict()
    head['encoder_cfg'] = dict(head['encoder_cfg'], embed_dim=96)
    other = tmp_path / 'sam_wider.pth'
    tiny_tools.save_sam(head, str(other), 2)
    with pytest.raises(StateDictError) as info:
        run_test_tool(test_tool, monkeypatch, tmp_path,
                      trained_only_run.config_file, trained_only_run.ckpts[4],
                      '--cfg-options', f'model.decode_head.checkpoint={other}')
    message = str(info.value)
    assert f'Cannot load {other}' in message
    assert ('mis-shaped' in message
            and 'image_encoder.patch_embed.proj.weight (checkpoint (96, 3, '
            '16, 16), model (64, 3, 16, 16))' in message)
