# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The RSRefSeg segmentor."""
from typing import Dict, List

from mmseg.registry import MODELS
from torch import Tensor

from .base_refsegmentor import BaseRefSegmentor

__all__ = ['RSRefSeg']


@MODELS.register_module()
class RSRefSeg(BaseRefSegmentor):
    """RSRefSeg: referring remote sensing image segmentation with CLIP + SAM.

    K. Chen et al., "RSRefSeg: Referring Remote Sensing Image Segmentation
    with Foundation Models", arXiv:2501.06809. The backbone
    (``CLIPBackbone``: CLIP/SigLIP) encodes the image and the referring
    expression; the neck (``TextFilterNeck``) filters CLIP's visual features
    with the text into sparse and dense prompt embeddings; the decode head
    (``SAMPromptHead``) encodes the image with SAM and decodes the mask.

    Args: see :class:`BaseRefSegmentor`. The paper configs declare the
    authors' fine-tuning policy in ``finetune_cfg``
    (``configs/_base_/models/rsrefseg_siglip-so400m_sam-vitb.py``).

    Raises:
        KeyError: At run time, if a data sample has no ``text``.
    """

    def extract_feat(self, inputs: Tensor,
                     batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        """Run CLIP, the text filter and SAM's image encoder.

        Args:
            inputs (Tensor): (B, 3, H, W) RGB 0-255 images, H = W = SAM's
                input size.
            batch_img_metas (list[dict]): Meta info with ``text``.

        Returns:
            dict: The neck outputs (``sparse_embeddings`` (B, N, C_p),
            ``mask_prompt`` (B, 1, 4h, 4w) or None, ``global_logits``
            (B, h', w'), ``local_activation`` (B, T, h', w')) plus
            ``image_embeddings`` (B, C_p, h, w).
        """
        feats = self.backbone(inputs, self.texts_of(batch_img_metas))
        pos = self.decode_head.dense_pe(feats['visual_feats'].shape[-2:])
        prompts = self.neck(feats, pos)
        prompts['image_embeddings'] = self.decode_head.encode_image(inputs)
        return prompts

    def _mask_logits(self, inputs: Tensor,
                     batch_img_metas: List[dict]) -> Tensor:
        """Low-resolution mask logits (B, 1, 4h, 4w)."""
        p = self.extract_feat(inputs, batch_img_metas)
        return self.decode_head(p['image_embeddings'], p['sparse_embeddings'],
                                p['mask_prompt'])
