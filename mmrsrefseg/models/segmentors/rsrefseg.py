# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The RSRefSeg segmentor."""
from typing import Dict, List, Optional

from mmengine.logging import print_log
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList)
from torch import Tensor

from mmrsrefseg.utils.lora import count_parameters, inject_lora

# The paper's LoRA targets (RSRefSeg, arXiv:2501.06809, Sec. III-D): SAM's
# attention qkv/proj and MLP lin1/lin2 in every block; CLIP's vision and
# text attention q/k/v/out projections. Regular expressions are matched
# against full module names, so SAM's ``patch_embed.proj`` and SigLIP's
# attention-pooling head are not adapted.
DEFAULT_LORA_TARGETS = {
    'decode_head.image_encoder':
    r'blocks\.\d+\.(attn\.(qkv|proj)|mlp\.lin[12])',
    'backbone.model.vision_model':
    r'encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)',
    'backbone.model.text_model':
    r'encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)',
}


@MODELS.register_module()
class RSRefSeg(EncoderDecoder):
    """RSRefSeg: referring remote sensing image segmentation with CLIP + SAM.

    K. Chen et al., "RSRefSeg: Referring Remote Sensing Image Segmentation
    with Foundation Models", arXiv:2501.06809. The backbone (CLIP/SigLIP)
    encodes the image and the referring expression; the neck filters CLIP's
    visual features with the text into sparse and dense prompt embeddings;
    the decode head (SAM) encodes the image and decodes the mask.

    Each data sample must carry its referring expression in
    ``metainfo['text']`` (see ``PackRefSegInputs``). Inputs are RGB 0-255
    images at SAM's input size (the data preprocessor does not normalise;
    CLIP and SAM normalise with their own statistics).

    Args:
        backbone (dict): ``CLIPBackbone`` config.
        neck (dict): ``TextFilterNeck`` config.
        decode_head (dict): ``SAMPromptHead`` config.
        lora_cfg (dict, optional): LoRA fine-tuning. Keys: ``rank`` (16),
            ``alpha`` (16), ``dropout`` (0.1), ``targets`` (dict mapping a
            submodule path to a peft target spec; defaults to
            :data:`DEFAULT_LORA_TARGETS`) and ``frozen`` (list of submodule
            paths frozen entirely in addition to the LoRA targets; defaults
            to ``['backbone']``, which also freezes CLIP's logit scale and
            bias). None trains everything (full fine-tuning).
        train_cfg, test_cfg, data_preprocessor, init_cfg: As in mmseg's
            ``EncoderDecoder``.

    Raises:
        KeyError: At run time, if a data sample has no ``text``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 decode_head: ConfigType,
                 lora_cfg: Optional[dict] = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None):
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self._freeze_unused_parameters()
        self.lora_cfg = lora_cfg
        if lora_cfg is not None:
            self._apply_lora(lora_cfg)
        self._log_parameters()

    def _freeze_unused_parameters(self):
        """Freeze parameters that never reach the loss.

        RSRefSeg gives SAM no points or boxes, and either always or never a
        mask prompt; the neck may take the similarity scale/bias from CLIP or
        learn its own. Parameters outside the graph would make DDP fail.
        """
        clip = self.backbone.model
        mode = getattr(self.neck, 'logit_mode', 'backbone')
        if mode == 'learnable':
            clip.logit_scale.requires_grad_(False)
        if mode != 'backbone' and hasattr(clip, 'logit_bias'):
            clip.logit_bias.requires_grad_(False)
        pe = self.decode_head.prompt_encoder
        pe.point_embeddings.requires_grad_(False)
        pe.not_a_point_embed.requires_grad_(False)
        if self.neck.use_dense_prompt:
            pe.no_mask_embed.requires_grad_(False)
        else:
            pe.mask_downscaling.requires_grad_(False)

    def _apply_lora(self, cfg: dict):
        cfg = dict(cfg)
        targets = cfg.pop('targets', DEFAULT_LORA_TARGETS)
        frozen = cfg.pop('frozen', ['backbone'])
        rank = cfg.pop('rank', 16)
        alpha = cfg.pop('alpha', 16)
        dropout = cfg.pop('dropout', 0.1)
        if cfg:
            raise KeyError(f'Unknown lora_cfg keys: {sorted(cfg)}')
        for path in frozen:
            self.get_submodule(path).requires_grad_(False)
        for path, spec in targets.items():
            matched = inject_lora(
                self.get_submodule(path),
                spec,
                rank=rank,
                alpha=alpha,
                dropout=dropout)
            print_log(
                f'LoRA (rank {rank}, alpha {alpha}, dropout {dropout}) on '
                f'{len(matched)} modules of {path}',
                logger='current')

    def _log_parameters(self):
        rows = []
        for name, module in (('backbone', self.backbone), ('neck', self.neck),
                             ('decode_head', self.decode_head)):
            total, trainable = count_parameters(module)
            rows.append(f'{name}: {total / 1e6:.2f} M total, '
                        f'{trainable / 1e6:.2f} M trainable')
        total, trainable = count_parameters(self)
        rows.append(f'all: {total / 1e6:.2f} M total, {trainable / 1e6:.2f} M '
                    'trainable')
        print_log('RSRefSeg parameters: ' + '; '.join(rows), logger='current')

    @staticmethod
    def _texts(batch_img_metas: List[dict]) -> List[str]:
        texts = []
        for meta in batch_img_metas:
            if 'text' not in meta:
                raise KeyError(
                    'Data sample metainfo has no "text" (referring '
                    f'expression); keys: {sorted(meta)}. Pack inputs with '
                    'PackRefSegInputs.')
            texts.append(meta['text'])
        return texts

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
        feats = self.backbone(inputs, self._texts(batch_img_metas))
        pos = self.decode_head.dense_pe(feats['visual_feats'].shape[-2:])
        prompts = self.neck(feats, pos)
        prompts['image_embeddings'] = self.decode_head.encode_image(inputs)
        return prompts

    def _mask_logits(self, inputs: Tensor,
                     batch_img_metas: List[dict]) -> Tensor:
        """Low-resolution mask logits (B, 1, 4h, 4w)."""
        p = self.extract_feat(inputs, batch_img_metas)
        return self.decode_head.decode(p['image_embeddings'],
                                       p['sparse_embeddings'],
                                       p['mask_prompt'])

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Mask logits (B, 1, H, W) at the input size."""
        return self.decode_head.predict_by_feat(
            self._mask_logits(inputs, batch_img_metas), batch_img_metas)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Training losses.

        Args:
            inputs (Tensor): (B, 3, H, W) RGB 0-255.
            data_samples (list[SegDataSample]): With ``gt_sem_seg`` and
                ``metainfo['text']``.

        Returns:
            dict[str, Tensor]: ``decode.loss_*`` and ``decode.acc_seg``.
        """
        metas = [s.metainfo for s in data_samples]
        logits = self._mask_logits(inputs, metas)
        losses = self.decode_head.loss_by_feat(logits, data_samples)
        return {f'decode.{k}': v for k, v in losses.items()}

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """Low-resolution mask logits (B, 1, 4h, 4w) (``mode='tensor'``).

        Raises:
            KeyError: Without data samples holding ``text``.
        """
        if data_samples is None:
            raise KeyError('RSRefSeg needs data samples with metainfo '
                           '"text" (the referring expressions)')
        return self._mask_logits(inputs, [s.metainfo for s in data_samples])

    def aug_test(self, *args, **kwargs):
        """Test-time augmentation is not defined for RSRefSeg."""
        raise NotImplementedError('RSRefSeg does not support aug_test')
