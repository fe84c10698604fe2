# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Average of a feature map inside the ground-truth mask."""
import torch.nn.functional as F
from torch import Tensor

__all__ = ['masked_average_pool', 'IGNORE_MODES']

IGNORE_MODES = ('exclude', 'raw')


def masked_average_pool(feats: Tensor,
                        seg_label: Tensor,
                        ignore_index: int = 255,
                        ignore_mode: str = 'exclude') -> Tensor:
    """Mean feature inside each sample's ground-truth mask.

    The image side of RSRefSeg 2's InfoNCE loss (arXiv:2507.06231; the
    authors' ``PseudoSegHead.loss_by_feat`` with
    ``clip_visual_feat_map_perbatch``): the label map is resized to the
    feature grid (bilinear, ``align_corners=True``, as float), thresholded
    at 0.5, and the features are averaged over the positions inside. The
    authors average over all h * w positions instead (the mask sum divided
    by h * w); the two differ by a positive factor per sample and agree
    after the L2 normalisation of the loss. A sample with an empty mask
    gives a zero vector (as theirs).

    ``ignore_mode`` -- pixels labelled ``ignore_index`` (image padding):

    - ``'exclude'`` (default, ours): they count as background;
    - ``'raw'`` (the authors'): the label value itself (255) is resized, so
      padding and its neighbourhood count as the object.

    Args:
        feats (Tensor): (B, C, h, w) feature map (the SigLIP map V0).
        seg_label (Tensor): (B, H, W) or (B, 1, H, W) integer labels,
            1 = object, 0 = background, ``ignore_index`` = ignored.
        ignore_index (int): Label of ignored pixels. Defaults to 255.
        ignore_mode (str): ``'exclude'`` or ``'raw'``. Defaults to
            ``'exclude'``.

    Returns:
        Tensor: (B, C) features, unnormalised.

    Raises:
        ValueError: On an unknown ``ignore_mode``.
    """
    if ignore_mode not in IGNORE_MODES:
        raise ValueError(f'ignore_mode must be one of {IGNORE_MODES}, '
                         f'got {ignore_mode!r}')
    if seg_label.dim() == 3:
        seg_label = seg_label[:, None]
    label = seg_label.float()
    if ignore_mode == 'exclude':
        label = label.masked_fill(seg_label == ignore_index, 0.)
    mask = F.interpolate(
        label, size=feats.shape[-2:], mode='bilinear', align_corners=True)
    mask = (mask > 0.5).to(feats.dtype)
    return (feats * mask).sum((2, 3)) / mask.sum((2, 3)).clamp(min=1)
