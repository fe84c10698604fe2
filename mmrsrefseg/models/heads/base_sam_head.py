# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""What the SAM and SAM 2.1 heads share: losses, prediction, loading."""
from abc import abstractmethod
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import DiceLoss
from mmseg.utils import SampleList
from torch import Tensor


class BaseSAMHead(BaseDecodeHead):
    """A promptable segmenter as a one-channel (sigmoid) decode head.

    Subclasses wrap a SAM-family model (:class:`SAMPromptHead`,
    :class:`SAM2PromptHead`): they encode the image, decode one mask per
    image from the prompts the neck produces and read the official weights
    (:meth:`read_pretrained`). This class gives them mmseg's loss and
    prediction interface and the loading protocol of mmrsrefseg's pretrained
    components (``pretrained_source`` / ``read_pretrained`` /
    ``init_weights``). Which parameters are trained is the segmentor's
    ``finetune_cfg``'s business, not the head's.

    Args:
        prompt_channels (int): Prompt width C_p.
        checkpoint (str, optional): Weights file or directory loaded in
            :meth:`init_weights`; None keeps the random initialisation.
        threshold (float): Probability threshold of the prediction.
        loss_decode (dict | list[dict]): mmseg loss configs, computed on the
            logits upsampled to the label size (see :meth:`loss_by_feat`).
        **kwargs: Further ``BaseDecodeHead`` arguments (``ignore_index``,
            ``align_corners``).
    """

    def __init__(self, prompt_channels: int, checkpoint: Optional[str],
                 threshold: float, loss_decode, **kwargs):
        super().__init__(
            in_channels=prompt_channels,
            channels=prompt_channels,
            num_classes=2,
            out_channels=1,
            threshold=threshold,
            loss_decode=loss_decode,
            init_cfg=None,
            **kwargs)
        # BaseDecodeHead's 1x1 classifier and dropout are not part of SAM.
        del self.conv_seg
        self.dropout = None
        self.prompt_channels = prompt_channels
        self.checkpoint = checkpoint

    @property
    def pretrained_source(self) -> Optional[str]:
        """Where :meth:`init_weights` reads the weights (None: random)."""
        return self.checkpoint

    @abstractmethod
    def read_pretrained(self) -> Dict[str, Tensor]:
        """The weights of ``checkpoint`` under this module's key names.

        Returns:
            dict[str, Tensor]: Every parameter and persistent buffer of the
            head except LoRA matrices (LoRA-wrapped layers as
            ``base_layer``).
        """

    def init_weights(self):
        """Load ``checkpoint`` strictly (see :meth:`read_pretrained`).

        Raises:
            FileNotFoundError, ValueError: On a bad ``checkpoint``.
            StateDictError: On missing, unexpected or mis-shaped keys.
        """
        if self.checkpoint is None:
            super().init_weights()
            return
        self.load_state_dict(self.read_pretrained(), strict=False)
        print_log(
            f'{type(self).__name__}: loaded weights from {self.checkpoint}',
            logger='current')
        self._is_init = True

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Losses of mask logits against the ground-truth masks.

        Args:
            seg_logits (Tensor): (B, 1, h, w) mask logits (any h, w; upsampled
                bilinearly to the label size).
            batch_data_samples (list[SegDataSample]): With ``gt_sem_seg``
                (1, H, W) in {0, 1} (``ignore_index`` pixels excluded).

        Returns:
            dict[str, Tensor]: One entry per loss plus ``acc_seg`` (pixel
            accuracy of ``sigmoid > threshold`` in percent).
        """
        seg_label = self._stack_batch_gt(batch_data_samples)
        seg_logits = F.interpolate(
            seg_logits,
            size=seg_label.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        valid = seg_label != self.ignore_index
        target = (seg_label == 1) & valid
        losses = dict()
        loss_modules = self.loss_decode if isinstance(
            self.loss_decode, nn.ModuleList) else [self.loss_decode]
        for loss_module in loss_modules:
            if isinstance(loss_module, DiceLoss):
                # mmseg's DiceLoss one-hot-expands a (B, H, W) label to the
                # prediction's single channel as "label == 0" (background),
                # so it gets the (B, 1, H, W) foreground target directly;
                # ignored pixels get a logit whose sigmoid is 0 and target 0,
                # which removes them from both Dice sums.
                loss = loss_module(
                    seg_logits.masked_fill(~valid, -100.), target.float())
            else:
                loss = loss_module(
                    seg_logits,
                    seg_label.squeeze(1),
                    ignore_index=self.ignore_index)
            name = loss_module.loss_name
            losses[name] = losses[name] + loss if name in losses else loss
        with torch.no_grad():
            pred = seg_logits.sigmoid() > self.threshold
            correct = ((pred == target) & valid).sum()
            losses['acc_seg'] = correct.float() * 100. / valid.sum().clamp(
                min=1)
        return losses

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """Upsample mask logits to the (padded) input size.

        Args:
            seg_logits (Tensor): (B, 1, h, w) mask logits.
            batch_img_metas (list[dict]): With ``img_shape`` or
                ``pad_shape``.

        Returns:
            Tensor: (B, 1, H, W) mask logits at the input size.
        """
        size = batch_img_metas[0].get('pad_shape',
                                      batch_img_metas[0]['img_shape'])
        return F.interpolate(
            seg_logits,
            size=tuple(size[:2]),
            mode='bilinear',
            align_corners=self.align_corners)
