# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""QueryDecorrelationLoss against hand-computed values."""
import math

import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmrsrefseg  # noqa: F401


def build(**kwargs):
    init_default_scope('mmseg')
    return MODELS.build(dict(type='QueryDecorrelationLoss', **kwargs))


def test_parallel_orthogonal_and_batch_mean():
    loss = build(loss_weight=1.)
    x = torch.tensor([[1., 0., 0.]])
    assert loss(x, 3 * x).item() == 1  # parallel: cos^2 = 1
    assert loss(x, -2 * x).item() == 1  # anti-parallel: cos^2 = 1
    assert loss(x, torch.tensor([[0., 5., 0.]])).item() == 0  # orthogonal
    diag = torch.tensor([[1., 1., 0.]])
    assert math.isclose(loss(x, diag).item(), 0.5, rel_tol=1e-6)  # 45 deg
    # batch mean of (1, 0, 0.5)
    q1 = torch.tensor([[1., 0., 0.], [1., 0., 0.], [1., 0., 0.]])
    q2 = torch.tensor([[2., 0., 0.], [0., 1., 0.], [1., 1., 0.]])
    assert math.isclose(loss(q1, q2).item(), 0.5, rel_tol=1e-6)


def test_authors_weight_and_name():
    loss = build()
    assert loss.loss_weight == 0.5
    assert loss.loss_name == 'loss_query_decorrelation'
    x = torch.tensor([[1., 2., 3.]], requires_grad=True)
    out = loss(x, 2 * x.detach())
    assert math.isclose(out.item(), 0.5, rel_tol=1e-6)
    out.backward()
    # at cos = 1 the cosine is maximal: zero gradient
    assert x.grad.abs().max() < 1e-6
