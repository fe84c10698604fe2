# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""mmengine checkpoints load under torch >= 2.6 (weights_only) with compat.

A tiny mmengine ``Runner`` (mmseg default runtime: LoggerHook, message hub,
AdamW, LinearLR + cosine schedulers, CheckpointHook with ``save_best``)
writes real checkpoints; they must resume / load with
``mmrsrefseg.utils.compat`` and must fail without it.
"""
import io
import json
import os.path as osp
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmseg.registry import DATASETS, METRICS, MODELS
from torch import nn
from torch.utils.data import Dataset

from mmrsrefseg.utils import compat

pytestmark = pytest.mark.skipif(
    not compat.needs_safe_globals(),
    reason='torch < 2.6 does not default to weights_only=True')


@MODELS.register_module()
class CkptCompatToyModel(BaseModel):
    """Linear regressor with the mmengine ``BaseModel`` interface."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(torch.stack(inputs)).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - torch.stack(labels))**2).mean())
        if mode == 'predict':
            return [dict(pred=o, label=t) for o, t in zip(out, labels)]
        return out


@DATASETS.register_module()
class CkptCompatToyDataset(Dataset):
    """Eight (x, y) pairs with y = x0 - x1."""

    metainfo = dict(classes=('background', 'object'))

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        x = torch.tensor([idx / 8, 1 - idx / 8])
        return dict(inputs=x, labels=x[0] - x[1])


@METRICS.register_module()
class CkptCompatToyMetric(BaseMetric):
    """Returns numpy float64 like mmseg's IoUMetric (goes into the hub)."""

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.append(float((s['pred'] - s['label']).abs()))

    def compute_metrics(self, results):
        return dict(acc=np.round(100 - np.mean(results), 2))


def make_cfg(work_dir, name, max_iters=4, **kwargs):
    loader = dict(
        batch_size=2, num_workers=0, dataset=dict(type='CkptCompatToyDataset'))
    return Config(
        dict(
            default_scope='mmseg',
            experiment_name=name,
            work_dir=str(work_dir),
            model=dict(type='CkptCompatToyModel'),
            train_dataloader=dict(
                sampler=dict(type='InfiniteSampler', shuffle=True), **loader),
            val_dataloader=dict(
                sampler=dict(type='DefaultSampler', shuffle=False), **loader),
            val_evaluator=dict(type='CkptCompatToyMetric'),
            val_cfg=dict(type='ValLoop'),
            test_dataloader=dict(
                sampler=dict(type='DefaultSampler', shuffle=False), **loader),
            test_evaluator=dict(type='CkptCompatToyMetric'),
            test_cfg=dict(type='TestLoop'),
            train_cfg=dict(
                type='IterBasedTrainLoop', max_iters=max_iters,
                val_interval=2),
            optim_wrapper=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05)),
            param_scheduler=[
                dict(
                    type='LinearLR',
                    start_factor=0.01,
                    by_epoch=False,
                    begin=0,
                    end=2),
                dict(
                    type='CosineAnnealingLR',
                    eta_min=1e-5,
                    by_epoch=False,
                    begin=2,
                    end=8)
            ],
            default_hooks=dict(
                timer=dict(type='IterTimerHook'),
                logger=dict(
                    type='LoggerHook', interval=1, log_metric_by_epoch=False),
                param_scheduler=dict(type='ParamSchedulerHook'),
                checkpoint=dict(
                    type='CheckpointHook',
                    by_epoch=False,
                    interval=2,
                    save_best='acc',
                    rule='greater'),
                sampler_seed=dict(type='DistSamplerSeedHook')),
            log_processor=dict(by_epoch=False),
            log_level='WARNING',
            env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
            randomness=dict(seed=0),
            **kwargs))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Work dir of a 4-iteration run with checkpoints at iter 2 and 4."""
    work_dir = tmp_path_factory.mktemp('ckpt_compat')
    Runner.from_cfg(make_cfg(work_dir, 'ckpt_compat_train')).train()
    assert osp.isfile(work_dir / 'iter_4.pth')
    return work_dir


def allowed_names():
    names = set()
    for entry in compat.mmengine_safe_globals():
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f'{entry.__module__}.{entry.__qualname__}')
    return names


def test_fails_without_compat_and_allow_list_covers_it(trained):
    """In a clean interpreter (no mmrsrefseg) the checkpoint does not load;
    what torch reports as unsafe there is exactly what compat allow-lists.
    """
    code = textwrap.dedent(f"""
        import json, pickle, sys, torch
        path = {str(trained / 'iter_4.pth')!r}
        print(json.dumps(
            torch.serialization.get_unsafe_globals_in_checkpoint(path)))
        try:
            torch.load(path)  # what mmengine's _load_checkpoint calls
        except pickle.UnpicklingError as e:
            print('FAILED:', e)
            sys.exit(3)
        """)
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    unsafe_line, failure = proc.stdout.split('\n', 1)
    assert 'Unsupported global' in failure
    assert 'HistoryBuffer' in failure
    unsafe = set(json.loads(unsafe_line))
    assert unsafe >= {
        'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr',
        'numpy.ndarray', 'numpy.dtype'
    }
    assert unsafe <= allowed_names(), unsafe - allowed_names()
    # with compat imported (this process) nothing is left unsafe
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(trained / 'iter_4.pth')) == []


def test_resume_with_compat(trained):
    runner = Runner.from_cfg(
        make_cfg(trained, 'ckpt_compat_resume', max_iters=6, resume=True))
    runner.train()
    assert runner.iter == 6
    ckpt = torch.load(trained / 'iter_6.pth', map_location='cpu')
    assert ckpt['meta']['iter'] == 6
    # the message hub and the optimizer continued from iteration 4
    loss_hist, _ = ckpt['message_hub']['log_scalars']['train/loss'].data
    assert len(loss_hist) == 6
    steps = [s['step'] for s in ckpt['optimizer']['state'].values()]
    assert all(int(s) == 6 for s in steps)
    assert 'best_score' in ckpt['message_hub']['runtime_info']


def test_load_from_with_compat(trained):
    ckpt_path = str(trained / 'iter_2.pth')
    runner = Runner.from_cfg(
        make_cfg(
            trained / 'load_from', 'ckpt_compat_load', load_from=ckpt_path))
    runner.test()  # what tools/test.py does with --checkpoint
    expected = torch.load(ckpt_path, map_location='cpu')['state_dict']
    for key, value in runner.model.state_dict().items():
        torch.testing.assert_close(value, expected[key])


def test_getattr_stand_in_is_narrow():
    assert getattr not in torch.serialization.get_safe_globals()

    def roundtrip(target):

        class Reduced:

            def __reduce__(self):
                return getattr, target

        buf = io.BytesIO()
        torch.save({'x': Reduced()}, buf)  # protocol 2, like mmengine
        buf.seek(0)
        return torch.load(buf)['x']

    assert roundtrip((HistoryBuffer, 'mean')) is HistoryBuffer.mean
    for target in [(HistoryBuffer, 'update'), (HistoryBuffer, '__init__'),
                   (np.ndarray, 'tofile')]:
        with pytest.raises(pickle.UnpicklingError, match='only getattr'):
            roundtrip(target)


def test_default_statistics_are_the_allowed_names():
    HistoryBuffer()  # registers the defaults
    defaults = {
        n
        for n, f in HistoryBuffer._statistics_methods.items()
        if f is getattr(HistoryBuffer, n, None)
    }
    assert defaults == set(compat.HISTORY_BUFFER_STATISTICS)


def test_numpy1_paths_load():
    """Checkpoints pickled under numpy 1 name ``numpy.core.multiarray``."""
    from torch._weights_only_unpickler import Unpickler
    arr = np.arange(6, dtype=np.int64).reshape(2, 3)
    data = pickle.dumps({'a': arr, 's': np.float64(2.5)}, protocol=2)
    assert b'numpy._core.multiarray' in data
    data = data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
    out = Unpickler(io.BytesIO(data), encoding='latin1').load()
    np.testing.assert_array_equal(out['a'], arr)
    assert out['s'] == 2.5


def test_object_arrays_stay_blocked():
    buf = io.BytesIO()
    torch.save({'a': np.array([{'x': 1}], dtype=object)}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf)


def test_registration_is_idempotent():
    before = list(torch.serialization.get_safe_globals())
    assert compat.register_mmengine_safe_globals() is False
    assert list(torch.serialization.get_safe_globals()) == before
