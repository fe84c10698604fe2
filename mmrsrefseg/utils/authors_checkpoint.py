# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Checkpoints trained with the RSRefSeg authors' code -> mmrsrefseg.

The authors' model (KyanChen/RSRefSeg, ``rsris/models/models.py``,
``RefSegEncoderDecoder``) is a composition of HF transformers modules wrapped
by peft's ``get_peft_model``, so its state dict names are:

- ``backbone.base_model.model.model.*`` (HF ``SamVisionEncoder``) ->
  ``decode_head.image_encoder.*``;
- ``backbone.base_model.model.shared_image_embedding.*`` -> dropped (a copy
  of the prompt encoder's positional Gaussian matrix, checked equal);
- ``clip_vision_encoder.base_model.model.model.*`` ->
  ``backbone.model.vision_model.*``;
- ``clip_text_encoder.base_model.model.model.*`` ->
  ``backbone.model.text_model.*``;
- ``clip_text_encoder.base_model.model.logit_{scale,bias}`` ->
  ``backbone.model.logit_{scale,bias}``;
- ``sam_prompt_encoder.model.*`` (HF ``SamPromptEncoder``) ->
  ``decode_head.prompt_encoder.*``;
- ``sam_mask_decoder.model.*`` (HF ``SamMaskDecoder``) ->
  ``decode_head.mask_decoder.*``;
- ``prompter_down_channel.{conv,bn}.*`` -> ``neck.input_proj.{conv,bn}.*``;
- ``prompter_down_spatial.{i}.{conv,bn}.*`` (i < k) ->
  ``neck.downsample.{i}.{conv,bn}.*``;
- ``prompter_down_spatial.{k}.conv.*`` -> ``neck.output_proj.conv.*``
  (both are mmcv ``ConvModule``s).

HF SAM names become segment-anything names through
:mod:`mmrsrefseg.utils.sam_checkpoint`; peft's ``base_layer`` /
``lora_A.default`` / ``lora_B.default`` parts are kept (mmrsrefseg injects
LoRA with peft too).

Files: a DeepSpeed ``mp_rank_00_model_states.pt`` (the model under
``module``, fp16 under ZeRO-2 fp16; also inside an mmengine
``epoch_N.pth/`` checkpoint directory), the authors'
``deepspeed_ckpt_to_torch_ckpt.py`` output (a bare state dict), or an
mmengine checkpoint (``state_dict``) of their AMP variant.
"""
import os.path as osp
import re
from typing import Dict, Tuple

import torch
from torch import Tensor

from .checkpoint import read_checkpoint, state_dict_of
from .sam_checkpoint import hf_sam_to_segment_anything

__all__ = ['read_authors_state_dict', 'convert_authors_state_dict']

_PEFT = 'base_model.model.'
_SAM_PARTS = (
    ('backbone.' + _PEFT + 'model.', 'vision_encoder.'),
    ('sam_prompt_encoder.model.', 'prompt_encoder.'),
    ('sam_mask_decoder.model.', 'mask_decoder.'),
)
_PLAIN_PARTS = (
    ('clip_vision_encoder.' + _PEFT + 'model.',
     'backbone.model.vision_model.'),
    ('clip_text_encoder.' + _PEFT + 'model.', 'backbone.model.text_model.'),
    ('clip_text_encoder.' + _PEFT + 'logit_', 'backbone.model.logit_'),
)
_DROPPED = ('backbone.' + _PEFT + 'shared_image_embedding.', )


def read_authors_state_dict(path: str) -> Dict[str, Tensor]:
    """Read the model weights of a checkpoint of the authors' code.

    Args:
        path (str): ``mp_rank_00_model_states.pt`` (DeepSpeed), a directory
            holding it (mmengine's ``epoch_N.pth/``), a bare state dict
            (``mp_rank_00_model_states.pth``) or an mmengine checkpoint.

    Returns:
        dict[str, Tensor]: The authors' state dict, floating tensors in fp32.

    Raises:
        FileNotFoundError: If no checkpoint file is found at ``path``.
        ValueError: If the file is empty, not a torch file or holds no
            state dict of tensors (the message names the file).
    """
    if osp.isdir(path):
        inner = osp.join(path, 'mp_rank_00_model_states.pt')
        if not osp.isfile(inner):
            raise FileNotFoundError(
                f'{path} is a directory without mp_rank_00_model_states.pt '
                '(a DeepSpeed checkpoint directory)')
        path = inner
    # DeepSpeed's model-states file pickles its config objects as well.
    ckpt = read_checkpoint(path, weights_only=False)
    for key in ('module', 'state_dict'):
        if isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    return {
        k: v.float() if torch.is_floating_point(v) else v
        for k, v in state_dict_of(ckpt, path).items()
    }


def _prompter_key(key: str, num_downsample: int) -> str:
    if key.startswith('prompter_down_channel.'):
        return 'neck.input_proj.' + key[len('prompter_down_channel.'):]
    m = re.match(r'^prompter_down_spatial\.(\d+)\.((conv|bn)\..+)$', key)
    if m is None:
        return None
    i = int(m.group(1))
    if i < num_downsample:
        return f'neck.downsample.{i}.{m.group(2)}'
    if i == num_downsample and m.group(3) == 'conv':
        return f'neck.output_proj.{m.group(2)}'
    return None


def convert_authors_state_dict(
        state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict]:
    """Rename the authors' state dict to mmrsrefseg's ``RSRefSeg`` keys.

    Args:
        state (dict[str, Tensor]): From :func:`read_authors_state_dict`.

    Returns:
        tuple: The mmrsrefseg state dict and an info dict
        (``num_downsample``: the prompter's stride-2 block count k).

    Raises:
        KeyError: If keys remain that no rule maps (each one named).
        ValueError: If the two copies of SAM's positional Gaussian matrix
            differ.
    """
    spatial = {
        int(m.group(1))
        for m in (re.match(r'^prompter_down_spatial\.(\d+)\.', k)
                  for k in state) if m
    }
    num_downsample = max(spatial) if spatial else 0
    sam, out, unknown = {}, {}, []
    for key, value in state.items():
        if key.startswith(_DROPPED):
            sam['shared_image_embedding.' + key[len(_DROPPED[0]):]] = value
            continue
        sam_part = next((hf + key[len(src):]
                         for src, hf in _SAM_PARTS if key.startswith(src)),
                        None)
        if sam_part is not None:
            sam[sam_part] = value
            continue
        plain = next((dst + key[len(src):]
                      for src, dst in _PLAIN_PARTS if key.startswith(src)),
                     None)
        if plain is None:
            plain = _prompter_key(key, num_downsample)
        if plain is None:
            unknown.append(key)
        else:
            out[plain] = value
    if unknown:
        raise KeyError(f'{len(unknown)} keys of the authors\' checkpoint '
                       f'have no mmrsrefseg counterpart: {unknown[:20]}')
    for key, value in hf_sam_to_segment_anything(sam).items():
        out['decode_head.' + key] = value
    return out, dict(num_downsample=num_downsample)
