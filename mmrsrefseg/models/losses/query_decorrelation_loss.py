# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Decorrelation of RSRefSeg 2's two query sets."""
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class QueryDecorrelationLoss(nn.Module):
    """Squared cosine similarity of the two mean query vectors.

    ``loss = loss_weight * mean_b cos(q1_b, q2_b) ** 2`` with ``q1``, ``q2``
    the means of the two query sets after the two-query block. It pushes the
    first-order (Q1, image refinement) and second-order (Q2, prompting)
    queries apart. RSRefSeg 2 (arXiv:2507.06231; the authors'
    ``PseudoSegHead.loss_by_feat``, ``text_queries1_queries2``, weight 0.5).

    Args:
        loss_weight (float): Weight of the loss. Defaults to 0.5 (the
            authors').
        loss_name (str): Name of the loss item; starts with ``loss_`` to be
            back-propagated. Defaults to ``'loss_query_decorrelation'``.
    """

    def __init__(self,
                 loss_weight: float = 0.5,
                 loss_name: str = 'loss_query_decorrelation'):
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, query_mean_1: Tensor, query_mean_2: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            query_mean_1 (Tensor): (B, C) mean of Q1.
            query_mean_2 (Tensor): (B, C) mean of Q2.

        Returns:
            Tensor: 0-d loss in [0, loss_weight].
        """
        cos = F.cosine_similarity(query_mean_1, query_mean_2, dim=1)
        return self.loss_weight * (cos**2).mean()

    @property
    def loss_name(self) -> str:
        """str: Name of the loss item."""
        return self._loss_name
