# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The RSRefSeg 2 segmentor."""
from typing import Dict, List, Optional

from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, SampleList
from torch import Tensor

from mmrsrefseg.models.utils import masked_average_pool
from .base_refsegmentor import BaseRefSegmentor

__all__ = ['RSRefSeg2']


@MODELS.register_module()
class RSRefSeg2(BaseRefSegmentor):
    """RSRefSeg 2: SigLIP2 + a cascaded prompter + SAM 2.1.

    K. Chen et al., "RSRefSeg 2: Decoupling Referring Remote Sensing Image
    Segmentation with Foundation Models", arXiv:2507.06231, as the authors'
    code computes it (KyanChen/RSRefSeg2, ``refseg/models/models.py``,
    ``RefSegEncoderDecoder``): the backbone (``CLIPBackbone`` with a SigLIP2
    so400m-patch16-512, SigLIP architecture, Gemma tokenizer) encodes the
    image into the token map V0 and the referring expression into its tokens
    and pooled feature; the neck (``CascadedPrompter``) reasons over the text
    with two query sets and turns them into 9 sparse prompt embeddings and a
    dense prompt (the refined SigLIP map's similarity with the sentence);
    the decode head (``SAM2PromptHead``) runs SAM 2.1 on the image with these
    prompts.

    Training losses (the authors' ``PseudoSegHead`` with the values of
    ``configs_RSRefSeg2/rrsisd_training.py``): the decode head's
    ``loss_decode`` (BCE x5 and Dice x5 on the mask logits), plus

    - ``query_loss`` (``QueryDecorrelationLoss``, x0.5) on the two query
      sets' means after the two-query block;
    - ``contrastive_loss`` (``InfoNCELoss``, x0.5, learnable temperature,
      features gathered across processes) between V0 averaged inside each
      ground-truth mask and the mean of the second query set.

    Args:
        backbone (dict): ``CLIPBackbone`` config (SigLIP2).
        neck (dict): ``CascadedPrompter`` config.
        decode_head (dict): ``SAM2PromptHead`` config.
        query_loss (dict, optional): Query decorrelation loss config; None
            turns it off.
        contrastive_loss (dict, optional): InfoNCE loss config; None turns
            it off.
        contrastive_ignore_mode (str): How padding pixels (``ignore_index``)
            of the ground truth enter the InfoNCE mask: ``'exclude'``
            (default: as background) or ``'raw'`` (the authors': the label
            value 255 itself is resized, so padding counts as the object).
            Padding only occurs on non-square images (RRSIS-D, RefSegRS and
            RISBench are square).
        finetune_cfg, train_cfg, test_cfg, data_preprocessor, init_cfg: See
            :class:`BaseRefSegmentor`.

    Raises:
        KeyError: At run time, if a data sample has no ``text``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 decode_head: ConfigType,
                 query_loss: Optional[dict] = dict(
                     type='QueryDecorrelationLoss', loss_weight=0.5),
                 contrastive_loss: Optional[dict] = dict(
                     type='InfoNCELoss', loss_weight=0.5),
                 contrastive_ignore_mode: str = 'exclude',
                 finetune_cfg: Optional[dict] = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None):
        # the loss modules hold parameters (the InfoNCE temperature): they
        # must exist before the fine-tuning policy is applied
        self._loss_cfgs = (query_loss, contrastive_loss)
        self.contrastive_ignore_mode = contrastive_ignore_mode
        super().__init__(
            backbone=backbone,
            neck=neck,
            decode_head=decode_head,
            finetune_cfg=finetune_cfg,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)

    def _init_decode_head(self, decode_head: ConfigType) -> None:
        """Build the decode head and the prompter losses."""
        super()._init_decode_head(decode_head)
        query_loss, contrastive_loss = self._loss_cfgs
        self.query_loss = MODELS.build(query_loss) if query_loss else None
        self.contrastive_loss = MODELS.build(
            contrastive_loss) if contrastive_loss else None

    def extract_feat(self, inputs: Tensor,
                     batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        """Run SigLIP2, the cascaded prompter and SAM 2.1's image encoder.

        Args:
            inputs (Tensor): (B, 3, S, S) RGB 0-255 images, S = SAM 2.1's
                input size.
            batch_img_metas (list[dict]): Meta info with ``text``.

        Returns:
            dict: The backbone's ``visual_feats`` (B, C, h, w) V0, the
            prompter outputs (``sparse_embeddings`` (B, 9, C_p),
            ``mask_prompt`` (B, 1, S/4, S/4), ``dense_similarity``,
            ``query_mean_1`` / ``query_mean_2`` (B, C)) and the head's
            ``image_feats`` (see ``SAM2PromptHead.encode_image``).
        """
        feats = self.backbone(inputs, self.texts_of(batch_img_metas))
        prompts = self.neck(feats)
        prompts['visual_feats'] = feats['visual_feats']
        prompts['image_feats'] = self.decode_head.encode_image(inputs)
        return prompts

    def _mask_logits(self, inputs: Tensor,
                     batch_img_metas: List[dict]) -> Tensor:
        """Low-resolution mask logits (B, 1, S/4, S/4)."""
        p = self.extract_feat(inputs, batch_img_metas)
        return self.decode_head(p['image_feats'], p['sparse_embeddings'],
                                p['mask_prompt'])

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Training losses.

        Args:
            inputs (Tensor): (B, 3, S, S) RGB 0-255.
            data_samples (list[SegDataSample]): With ``gt_sem_seg`` and
                ``metainfo['text']``.

        Returns:
            dict[str, Tensor]: ``decode.loss_bce``, ``decode.loss_dice``,
            ``decode.acc_seg``, ``loss_query_decorrelation`` and
            ``loss_info_nce`` (weights applied).
        """
        p = self.extract_feat(inputs, [s.metainfo for s in data_samples])
        logits = self.decode_head(p['image_feats'], p['sparse_embeddings'],
                                  p['mask_prompt'])
        losses = {
            f'decode.{k}': v
            for k, v in self.decode_head.loss_by_feat(logits,
                                                      data_samples).items()
        }
        if self.query_loss is not None:
            losses[self.query_loss.loss_name] = self.query_loss(
                p['query_mean_1'], p['query_mean_2'])
        if self.contrastive_loss is not None:
            labels = self.decode_head._stack_batch_gt(data_samples)
            image = masked_average_pool(
                p['visual_feats'],
                labels,
                ignore_index=self.decode_head.ignore_index,
                ignore_mode=self.contrastive_ignore_mode)
            losses[self.contrastive_loss.loss_name] = self.contrastive_loss(
                image, p['query_mean_2'])
        return losses
