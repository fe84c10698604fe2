# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""InfoNCELoss: a 2x2 case by hand, and the gather across two processes."""
import math
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmrsrefseg.models.losses import InfoNCELoss, gather_with_local_grad


def test_two_pairs_by_hand():
    init_default_scope('mmseg')
    loss = MODELS.build(dict(type='InfoNCELoss', loss_weight=1.))
    s = 1 / 0.07
    assert math.isclose(loss.logit_scale.exp().item(), s, rel_tol=1e-6)
    image = torch.tensor([[2., 0.], [0., 3.]])  # normalised: e1, e2
    text = torch.tensor([[1., 0.], [1., 1.]])  # normalised: e1, (e1+e2)/r2
    r = 1 / math.sqrt(2)
    # logits = s * [[1, r], [0, r]]
    rows = [
        -math.log(math.exp(s) / (math.exp(s) + math.exp(s * r))),
        -math.log(math.exp(s * r) / (1 + math.exp(s * r)))
    ]
    cols = [-math.log(math.exp(s) / (math.exp(s) + 1)), math.log(2)]
    expected = (sum(rows) / 2 + sum(cols) / 2) / 2
    assert math.isclose(loss(image, text).item(), expected, rel_tol=1e-5)
    # default: the authors' weight 0.5
    assert math.isclose(
        InfoNCELoss()(image, text).item(), expected / 2, rel_tol=1e-5)
    assert InfoNCELoss().loss_name == 'loss_info_nce'


def test_one_process_gather_is_identity():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_local_grad(x) is x


def global_loss(image, text, scale):
    """Single-process symmetric InfoNCE on the whole (global) batch."""
    logits = scale.exp() * F.normalize(
        image, dim=1) @ F.normalize(
            text, dim=1).t()
    labels = torch.arange(len(image))
    return 0.5 * (F.cross_entropy(logits, labels) +
                  F.cross_entropy(logits.t(), labels)) / 2


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, image, text, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    try:
        loss = InfoNCELoss()
        n = len(image) // world_size
        local_image = image[rank * n:(rank + 1) * n].clone().requires_grad_()
        local_text = text[rank * n:(rank + 1) * n].clone().requires_grad_()
        value = loss(local_image, local_text)
        value.backward()
        torch.save(
            dict(
                loss=value.detach(),
                image_grad=local_image.grad,
                text_grad=local_text.grad,
                scale_grad=loss.logit_scale.grad),
            os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_the_global_batch(tmp_path):
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(
        4, 6, generator=g), torch.randn(
            4, 6, generator=g)
    mp.start_processes(
        _worker,
        args=(2, _free_port(), image, text, str(tmp_path)),
        nprocs=2,
        join=True,
        start_method='fork')
    scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    for rank in range(2):
        got = torch.load(tmp_path / f'rank{rank}.pth')
        # the other rank's features enter without gradient
        mine = slice(2 * rank, 2 * rank + 2)
        img = image.clone().requires_grad_()
        txt = text.clone().requires_grad_()
        if scale.grad is not None:
            scale.grad = None
        expected = global_loss(img, txt, scale)
        expected.backward()
        torch.testing.assert_close(got['loss'], expected.detach())
        torch.testing.assert_close(got['image_grad'], img.grad[mine])
        torch.testing.assert_close(got['text_grad'], txt.grad[mine])
        torch.testing.assert_close(got['scale_grad'], scale.grad)
