# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""model_state_from_checkpoint on a trained-only checkpoint of a real (tiny)
training run: completed from the config's base files, checked strictly, a
warning when the config names other base files than training used."""
import copy
import shutil

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmrsrefseg.models.utils import trained_checkpoint


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def test_completed_from_the_base_files(trained_only_run, monkeypatch):
    logged = []
    monkeypatch.setattr(trained_checkpoint, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    model = MODELS.build(trained_only_run.cfg.model)  # not initialised
    ckpt = torch.load(trained_only_run.ckpts[4], map_location='cpu')
    state = trained_checkpoint.model_state_from_checkpoint(
        model, ckpt, trained_only_run.ckpts[4])
    full = torch.load(trained_only_run.full, map_location='cpu')['state_dict']
    assert state.keys() == full.keys()
    for key, value in full.items():
        assert torch.equal(state[key], value), key
    assert logged == [
        f'Loaded {len(full)} tensors from {trained_only_run.ckpts[4]} '
        '(trained-only checkpoint + pretrained base)'
    ]


def test_other_base_path_warns(trained_only_run, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(trained_checkpoint, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    cfg = copy.deepcopy(trained_only_run.cfg.model)
    moved = str(tmp_path / 'sam_copy.pth')
    shutil.copy(cfg.decode_head.checkpoint, moved)
    trained_sam = cfg.decode_head.checkpoint
    cfg.decode_head.checkpoint = moved
    model = MODELS.build(cfg)
    ckpt = torch.load(trained_only_run.ckpts[4], map_location='cpu')
    state = trained_checkpoint.model_state_from_checkpoint(
        model, ckpt, trained_only_run.ckpts[4])
    warning = logged[0]
    assert warning.startswith(f'{trained_only_run.ckpts[4]} was trained on '
                              'the base weights')
    assert trained_sam in warning and moved in warning
    # the same weights under another path: the same model
    full = torch.load(trained_only_run.full, map_location='cpu')['state_dict']
    for key, value in full.items():
        assert torch.equal(state[key], value), key
