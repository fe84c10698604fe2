# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Symmetric image-text InfoNCE loss over the global batch."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, get_rank, get_world_size
from mmseg.registry import MODELS
from torch import Tensor


def gather_with_local_grad(feats: Tensor) -> Tensor:
    """Concatenate every process's features; gradient to the local ones only.

    The other processes' features are gathered without gradient; this
    process's own rows are the input tensor itself, so the loss back-
    propagates into them (open_clip's ``gather_features`` with
    ``gather_with_grad=False, local_loss=False``, as the authors'). Works in
    one process (returns ``feats``).

    Args:
        feats (Tensor): (N, C) features of this process; N must be equal on
            every process.

    Returns:
        Tensor: (world_size * N, C), rank-major.
    """
    if get_world_size() == 1:
        return feats
    gathered = all_gather(feats.detach())
    gathered[get_rank()] = feats
    return torch.cat(gathered)


@MODELS.register_module()
class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE (CLIP) loss between image and text features.

    With L2-normalised image features ``x`` and text features ``y`` of all
    processes (``N`` pairs in total, :func:`gather_with_local_grad`) and the
    learnable temperature ``s`` (initialised to ``log(1 / 0.07)``)::

        logits = exp(s) * x @ y.T                   # (N, N)
        labels = arange(N)
        loss = loss_weight * (CE(logits, labels) + CE(logits.T, labels)) / 2

    Every process computes the loss of the whole global batch (the same
    value), with gradient flowing into its own features only. In one process
    this is the single-process formula on the local batch.

    RSRefSeg 2 (arXiv:2507.06231; the authors' ``PseudoSegHead``,
    ``clip_visual_feat_map_perbatch``, weight 0.5): image side = the SigLIP
    map V0 averaged inside the ground-truth mask
    (:func:`~mmrsrefseg.models.utils.masked_average_pool`), text side = the
    mean of Q2 after the two-query block. The authors add a learnable bias
    (``logit_bias2``) to both logit matrices; a constant added to every
    logit of a softmax row changes neither the loss nor any gradient, so it
    is left out (its checkpoint entry is dropped on conversion). Their loss
    calls ``torch.distributed.get_rank()`` unconditionally, so it needs a
    process group; this one does not.

    Args:
        temperature_init (float): Initial temperature ``1 / exp(s)``.
            Defaults to 0.07.
        loss_weight (float): Weight of the loss. Defaults to 0.5 (the
            authors').
        loss_name (str): Name of the loss item. Defaults to
            ``'loss_info_nce'``.
    """

    def __init__(self,
                 temperature_init: float = 0.07,
                 loss_weight: float = 0.5,
                 loss_name: str = 'loss_info_nce'):
        super().__init__()
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1 / temperature_init)))
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, image_feats: Tensor, text_feats: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            image_feats (Tensor): (N, C) image features of this process, any
                scale (normalised here).
            text_feats (Tensor): (N, C) text features of the same samples.

        Returns:
            Tensor: 0-d loss, >= 0.
        """
        image = gather_with_local_grad(F.normalize(image_feats, dim=1))
        text = gather_with_local_grad(F.normalize(text_feats, dim=1))
        logits = self.logit_scale.exp() * image @ text.t()
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = (F.cross_entropy(logits, labels) +
                F.cross_entropy(logits.t(), labels)) / 2
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """str: Name of the loss item."""
        return self._loss_name
