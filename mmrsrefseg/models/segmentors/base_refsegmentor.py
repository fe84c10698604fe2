# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""What RSRefSeg and RSRefSeg 2 share: text input, fine-tuning policy, the
pretrained weights of their components."""
from typing import Dict, List, Optional

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList)
from torch import Tensor, nn

from mmrsrefseg.models.utils.finetune import (apply_finetune_cfg,
                                              frozen_dtype_of)

__all__ = ['BaseRefSegmentor']


class BaseRefSegmentor(EncoderDecoder):
    """Base of the referring segmentors: image + referring expression -> mask.

    Each data sample carries its referring expression in
    ``metainfo['text']`` (packed by ``PackSegInputs`` with ``'text'`` in
    its ``meta_keys``). Inputs are RGB 0-255 images at the segmenter's input
    size (the data preprocessor does not normalise; the encoders normalise
    with their own statistics).

    Subclasses implement :meth:`_mask_logits`. The fine-tuning policy
    (frozen modules, LoRA targets, parameters outside the graph) is declared
    by the config's ``finetune_cfg`` and applied by
    :func:`~mmrsrefseg.models.utils.apply_finetune_cfg` after the model is
    built.

    Args:
        backbone (dict): Image-and-text encoder config.
        neck (dict): Prompter config.
        decode_head (dict): Segmenter (SAM) config.
        finetune_cfg (dict, optional): The fine-tuning policy (see
            :func:`~mmrsrefseg.models.utils.apply_finetune_cfg`), including
            ``frozen_dtype`` (see :meth:`forward`). None trains everything.
        train_cfg, test_cfg, data_preprocessor, init_cfg: As in mmseg's
            ``EncoderDecoder``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 decode_head: ConfigType,
                 finetune_cfg: Optional[dict] = None,
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
        self.finetune_cfg = finetune_cfg
        self.frozen_dtype = frozen_dtype_of(finetune_cfg)
        apply_finetune_cfg(self, finetune_cfg)

    def forward(self,
                inputs: Tensor,
                data_samples: OptSampleList = None,
                mode: str = 'tensor'):
        """mmseg's forward (``'loss'``, ``'predict'``, ``'tensor'``).

        With ``finetune_cfg.frozen_dtype`` (frozen linear / conv weights
        stored in half precision) the forward runs under autocast to that
        dtype when the inputs are float32 and no autocast is active on
        their device (``AmpOptimWrapper`` and mmengine's ``fp16`` loops
        enter their own; a model cast to half as a whole gets half inputs):
        a half-precision weight cannot meet a float32 activation outside
        autocast.
        """
        device_type = inputs.device.type
        if (self.frozen_dtype is None or inputs.dtype != torch.float32
                or torch.is_autocast_enabled(device_type)):
            return super().forward(inputs, data_samples, mode)
        with torch.autocast(device_type, dtype=self.frozen_dtype):
            return super().forward(inputs, data_samples, mode)

    # ------------------------------------------------------ pretrained parts
    def pretrained_components(self) -> Dict[str, nn.Module]:
        """Components whose weights come from files named by the config.

        Returns:
            dict[str, nn.Module]: Attribute name (``'backbone'``,
            ``'decode_head'``) -> component, for those with a configured
            ``pretrained_source``.
        """
        return {
            name: module
            for name, module in self.named_children()
            if getattr(module, 'pretrained_source', None) is not None
        }

    def pretrained_state_dict(self) -> Dict[str, Tensor]:
        """The weights of :meth:`pretrained_components`, as the model names
        them: what ``init_weights`` loads.

        A component whose weights are loaded already (``is_init``) gives
        them from memory instead of reading the files again (the frozen ones
        are still what the files hold). LoRA matrices are not part of it.

        Returns:
            dict[str, Tensor]: ``<component>.<key>`` -> tensor.

        Raises:
            StateDictError, ValueError, FileNotFoundError: From the
                components' ``read_pretrained``.
        """
        state = {}
        for name, module in self.pretrained_components().items():
            if module.is_init:
                part = {
                    k: v.detach()
                    for k, v in module.state_dict(keep_vars=True).items()
                    if 'lora_' not in k
                }
            else:
                part = module.read_pretrained()
            state.update({f'{name}.{k}': v for k, v in part.items()})
        return state

    # ----------------------------------------------------------------- text
    @staticmethod
    def texts_of(batch_img_metas: List[dict]) -> List[str]:
        """The referring expressions of a batch.

        Raises:
            KeyError: If a sample has no ``text``.
        """
        texts = []
        for meta in batch_img_metas:
            if 'text' not in meta:
                raise KeyError(
                    'Data sample metainfo has no "text" (referring '
                    f'expression); keys: {sorted(meta)}. Pack inputs with '
                    "PackSegInputs(meta_keys=(..., 'text'))")
            texts.append(meta['text'])
        return texts

    # -------------------------------------------------------------- forward
    def _mask_logits(self, inputs: Tensor,
                     batch_img_metas: List[dict]) -> Tensor:
        """Low-resolution mask logits (B, 1, h, w) (subclasses)."""
        raise NotImplementedError

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
        """Low-resolution mask logits (``mode='tensor'``).

        Raises:
            KeyError: Without data samples holding ``text``.
        """
        if data_samples is None:
            raise KeyError(f'{type(self).__name__} needs data samples with '
                           'metainfo "text" (the referring expressions)')
        return self._mask_logits(inputs, [s.metainfo for s in data_samples])

    def aug_test(self, *args, **kwargs):
        """Test-time augmentation is not defined for referring segmentors."""
        raise NotImplementedError(
            f'{type(self).__name__} does not support aug_test')
