# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The RSRefSeg segmentor."""
from typing import Dict, List, Optional

from mmengine.logging import print_log
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList)
from torch import Tensor, nn

from mmrsrefseg.utils.lora import count_parameters, inject_lora

_ATTN = r'encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)'
_SAM_BLOCKS = r'blocks\.\d+\.(attn\.(qkv|proj)|mlp\.lin[12])'

#: Named LoRA target sets: submodule path -> regular expression matched
#: against the submodule's full module names (``re.fullmatch``).
#:
#: - ``'authors'`` (default): the authors' public config
#:   (KyanChen/RSRefSeg ``configs_RSRefSeg/RSRefSeg-b.py``, ``lora_cfg``)
#:   translated to our module names. SAM: ``qkv, proj, lin1, lin2`` of every
#:   block and the neck convolutions (HF ``neck.conv1`` / ``neck.conv2`` =
#:   segment-anything ``neck.0`` / ``neck.2``); their suffix ``proj`` does
#:   not reach the patch embedding there (HF calls it ``projection``), so it
#:   is excluded here too. SigLIP vision: ``q/k/v/out_proj``, and, because
#:   peft matches the suffix ``out_proj``, the ``out_proj`` of the
#:   attention-pooling head's ``nn.MultiheadAttention``: that adapter never
#:   acts (the head's output is unused, and ``nn.MultiheadAttention`` reads
#:   ``out_proj.weight`` directly) and is frozen here, kept for identical
#:   parameter names and counts. SigLIP text: ``q/k/v/out_proj`` and the
#:   text ``head``.
#: - ``'blocks_only'``: attention and MLP projections inside the encoder
#:   blocks only (mmrsrefseg < 0.2): no SAM neck, no SigLIP heads.
LORA_TARGET_SETS = {
    'authors': {
        'decode_head.image_encoder': _SAM_BLOCKS + r'|neck\.[02]',
        'backbone.model.vision_model': _ATTN + r'|head\.attention\.out_proj',
        'backbone.model.text_model': _ATTN + r'|head',
    },
    'blocks_only': {
        'decode_head.image_encoder': _SAM_BLOCKS,
        'backbone.model.vision_model': _ATTN,
        'backbone.model.text_model': _ATTN,
    },
}
DEFAULT_LORA_TARGETS = LORA_TARGET_SETS['authors']


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
            ``alpha`` (16), ``dropout`` (0.1), ``merge_in_eval`` (True:
            merged LoRA weights in eval mode, see
            :class:`~mmrsrefseg.utils.lora.MergedEvalLoRALinear`; False: the
            authors' unmerged branch), ``targets`` (the name of a
            set in :data:`LORA_TARGET_SETS`, ``'authors'`` by default, or a
            dict mapping a submodule path to a peft target spec) and
            ``frozen`` (list of submodule
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
        self.lora_cfg = lora_cfg
        if lora_cfg is not None:
            self._apply_lora(lora_cfg)
        self._freeze_unused_parameters()
        self._log_parameters()

    def _freeze_unused_parameters(self):
        """Freeze parameters that never reach the loss, and record them.

        RSRefSeg gives SAM no points or boxes, and either always or never a
        mask prompt; it never uses SAM's IoU prediction or SigLIP's pooled
        image feature; the neck may take the similarity scale/bias from CLIP
        or learn its own. Parameters outside the graph would make DDP fail
        (the authors set ``find_unused_parameters=True`` instead). The frozen
        parameters that the authors' composition leaves trainable are
        recorded in :attr:`unused_trainable_in_authors` (name -> count), so
        that :meth:`authors_trainable_count` can state their figure.
        """
        unused = {}

        def freeze(name: str, target, all_params: bool = False):
            # all_params: the authors train all of it (else only what is
            # trainable now, e.g. the LoRA matrices of a frozen module)
            params = [target] if isinstance(target, nn.Parameter) else list(
                target.parameters())
            n = sum(p.numel() for p in params if all_params or p.requires_grad)
            for p in params:
                p.requires_grad_(False)
            if n:
                unused[name] = n

        clip = self.backbone.model
        mode = getattr(self.neck, 'logit_mode', 'backbone')
        if mode == 'learnable':
            clip.logit_scale.requires_grad_(False)
        if mode != 'backbone' and hasattr(clip, 'logit_bias'):
            clip.logit_bias.requires_grad_(False)
        head = getattr(clip.vision_model, 'head', None)
        if head is not None:  # SigLIP's attention pooling (LoRA there)
            freeze('backbone.model.vision_model.head', head)
        pe = self.decode_head.prompt_encoder
        freeze('decode_head.prompt_encoder.point_embeddings',
               pe.point_embeddings)
        freeze('decode_head.prompt_encoder.not_a_point_embed',
               pe.not_a_point_embed)
        if self.neck.use_dense_prompt:
            freeze('decode_head.prompt_encoder.no_mask_embed',
                   pe.no_mask_embed)
        else:
            freeze('decode_head.prompt_encoder.mask_downscaling',
                   pe.mask_downscaling)
        freeze(
            'decode_head.mask_decoder.iou_prediction_head',
            self.decode_head.mask_decoder.iou_prediction_head,
            all_params=True)
        self.unused_trainable_in_authors = unused

    def authors_trainable_count(self) -> int:
        """Trainable parameters as the authors' composition counts them.

        Ours (the parameters that receive gradients) plus those that the
        authors leave ``requires_grad=True`` although they never reach the
        loss (:attr:`unused_trainable_in_authors`). Meaningful with the
        authors' LoRA targets and a frozen CLIP.

        Returns:
            int: Parameter count.
        """
        return count_parameters(self)[1] + sum(
            self.unused_trainable_in_authors.values())

    def _apply_lora(self, cfg: dict):
        cfg = dict(cfg)
        targets = cfg.pop('targets', 'authors')
        frozen = cfg.pop('frozen', ['backbone'])
        rank = cfg.pop('rank', 16)
        alpha = cfg.pop('alpha', 16)
        dropout = cfg.pop('dropout', 0.1)
        merge_in_eval = cfg.pop('merge_in_eval', True)
        if cfg:
            raise KeyError(f'Unknown lora_cfg keys: {sorted(cfg)}')
        if isinstance(targets, str):
            if targets not in LORA_TARGET_SETS:
                raise KeyError(f'Unknown lora_cfg.targets {targets!r}; '
                               f'choose from {sorted(LORA_TARGET_SETS)} or '
                               'give a dict')
            targets = LORA_TARGET_SETS[targets]
        for path in frozen:
            self.get_submodule(path).requires_grad_(False)
        for path, spec in targets.items():
            matched = inject_lora(
                self.get_submodule(path),
                spec,
                rank=rank,
                alpha=alpha,
                dropout=dropout,
                merge_in_eval=merge_in_eval)
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
