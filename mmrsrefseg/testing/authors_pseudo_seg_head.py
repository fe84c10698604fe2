# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The RSRefSeg 2 authors' training loss, rebuilt for parity tests.

A re-implementation (not a copy) of ``PseudoSegHead.loss_by_feat`` in the
authors' ``refseg/models/models.py`` (KyanChen/RSRefSeg2) with the
``extra_loss`` of ``configs_RSRefSeg2/*_training.py``: BCE x5 and Dice x5 on
the mask logits (mmseg's losses), the squared cosine of the two query sets'
means x0.5, and a symmetric InfoNCE x0.5 between the label-masked SigLIP
tokens V0 and the mean of Q2 with a learnable temperature. Parameter names
equal theirs (``logit_scale1/2``, ``logit_bias1/2``; ``*1`` are unused by
the released configs but in their checkpoints).

Their Dice is a patched mmseg copy that compares a 1-channel prediction with
``label.unsqueeze(1)``; stock mmseg's ``DiceLoss`` given that (B, 1, H, W)
target computes the same function (stock mmseg with a (B, H, W) label would
one-hot it and score the background channel). The InfoNCE features are
gathered across processes when a process group exists; theirs calls
``torch.distributed.get_rank()`` unconditionally and fails in one process.
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['AuthorsPseudoSegHead']


class AuthorsPseudoSegHead(nn.Module):
    """Their ``PseudoSegHead``: the loss and its learnable temperatures.

    Args:
        dst_size (int): Side of the InfoNCE feature grid (their
            ``dst_size`` = SigLIP's grid, 32).
    """

    def __init__(self, dst_size: int):
        super().__init__()
        from mmseg.models.losses import CrossEntropyLoss, DiceLoss
        self.loss_decode = nn.ModuleList([
            CrossEntropyLoss(use_sigmoid=True, loss_weight=5.0),
            DiceLoss(use_sigmoid=True, loss_weight=5.0)
        ])
        self.dst_size = (dst_size, dst_size)
        init = math.log(1 / 0.07)
        self.logit_scale1 = nn.Parameter(torch.ones([]) * init)
        self.logit_scale2 = nn.Parameter(torch.ones([]) * init)
        self.logit_bias1 = nn.Parameter(torch.ones([]) * math.log(0.5))
        self.logit_bias2 = nn.Parameter(torch.ones([]) * math.log(0.5))

    @staticmethod
    def _gather(x: Tensor) -> Tensor:
        """All ranks' rows, this rank's with gradient (no-op alone)."""
        import torch.distributed as dist
        if not (dist.is_available() and dist.is_initialized()) or \
                dist.get_world_size() == 1:
            return x
        parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        parts[dist.get_rank()] = x
        return torch.cat(parts, dim=0)

    def loss(self, results: Dict[str, Tensor],
             gt: Tensor) -> Dict[str, Tensor]:
        """The four weighted loss terms (their ``decode.*`` log keys).

        Args:
            results (dict): The reference's forward outputs: ``seg_mask``
                (B, 1, h, w) logits, ``text_queries1`` / ``text_queries2``
                (B, 3, D), ``clip_visual_feat_map`` V0 (B, D, g, g).
            gt (Tensor): (B, H, W) int64 labels in {0, 1, 255}.

        Returns:
            dict[str, Tensor]: ``decode.loss_ce`` (BCE x5 at H x W, mean
            over all pixels, 255 ignored), ``decode.loss_dice`` (x5, V-Net
            form, eps 1e-3 on each squared sum, 255 a target of value 255),
            ``decode.loss_text_queries1_queries2`` (x0.5) and
            ``decode.loss_perbatch_refined_img_feat_map_perbatch``
            (InfoNCE x0.5; 0 for one sample in one process).
        """
        ce, dice = self.loss_decode
        logits = F.interpolate(
            results['seg_mask'],
            size=gt.shape[-2:],
            mode='bilinear',
            align_corners=False)
        losses = {
            'decode.loss_ce': ce(logits, gt, ignore_index=255),
            'decode.loss_dice':
            dice(logits, gt.unsqueeze(1), ignore_index=255)
        }
        q1 = F.normalize(results['text_queries1'].mean(dim=1), dim=1)
        q2 = F.normalize(results['text_queries2'].mean(dim=1), dim=1)
        losses['decode.loss_text_queries1_queries2'] = 0.5 * (
            F.cosine_similarity(q1, q2, dim=1)**2).mean()
        feat = F.interpolate(
            results['clip_visual_feat_map'],
            size=self.dst_size,
            mode='bilinear',
            align_corners=True)
        mask = F.interpolate(
            gt.unsqueeze(1).float(),
            size=self.dst_size,
            mode='bilinear',
            align_corners=True).squeeze(1) > 0.5
        img = F.normalize((feat * mask.unsqueeze(1)).mean(dim=(2, 3)), dim=1)
        img, text = self._gather(img), self._gather(q2)
        logits = self.logit_scale2.exp() * img @ text.t() + self.logit_bias2
        labels = torch.arange(logits.size(0), device=logits.device)
        losses['decode.loss_perbatch_refined_img_feat_map_perbatch'] = \
            0.5 * (F.cross_entropy(logits, labels) +
                   F.cross_entropy(logits.t(), labels)) / 2
        return losses
