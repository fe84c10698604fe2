# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM 2.1 weights in both public formats: Meta's ``.pt`` and HF transformers.

Meta's official ``sam2.1_hiera_*.pt`` files hold ``{'model': state_dict}`` of
the whole ``SAM2Base`` (image encoder, SAM heads, video memory modules). HF
transformers' SAM 2.1 directories (``Sam2Model`` / ``Sam2VideoModel``
``save_pretrained``; the ``facebook/sam2.1-hiera-*`` hub repositories are
``sam2_video``) hold the same tensors under other names.
:func:`hf_sam2_to_meta` renames the image-model part of an HF state dict to
Meta's names; the name pairs follow transformers'
``models/sam2/convert_sam2_to_hf.py`` (``KEYS_TO_MODIFY_MAPPING`` and
``replace_keys``), read in the other direction. Three things are more than a
rename:

- MLPs: Meta's ``MLP`` numbers its linears ``layers.0 .. layers.L-1``, HF's
  ``Sam2FeedForward`` has ``proj_in``, ``layers.0 .. layers.L-3``,
  ``proj_out``. The depth L of each MLP is read from the HF model
  (``Sam2FeedForward.num_layers``), never inferred from the keys.
- Point embeddings: HF stacks Meta's ``point_embeddings.{i}.weight`` (1, C)
  into one ``point_embed.weight`` (N, C), N = the config's
  ``num_point_embeddings``.
- The random-Fourier Gaussian matrix: Meta has one
  (``sam_prompt_encoder.pe_layer``); HF keeps two copies
  (``shared_image_embedding`` for the image-wide encoding,
  ``prompt_encoder.shared_embedding`` for points), which transformers'
  conversion writes from that one tensor. They must be equal.
"""
import os.path as osp
import re
from collections.abc import Mapping
from typing import Dict, List, Tuple

import torch
from torch import Tensor

from .checkpoint import (read_checkpoint, read_hf_config, read_hf_pretrained,
                         state_dict_of)

__all__ = [
    'HF_SAM2_MODEL_TYPES', 'HF_TO_META', 'hf_mlp_depths', 'hf_sam2_to_meta',
    'read_sam2_state_dict'
]

#: ``config.json`` ``model_type`` of the HF SAM 2.1 directories
#: ``Sam2Model.from_pretrained`` reads (``sam2_video``: the hub's
#: ``facebook/sam2.1-hiera-*``, whose memory weights transformers skips).
HF_SAM2_MODEL_TYPES = ('sam2', 'sam2_video')

# Ordered (pattern, replacement) rules over whole HF keys -> Meta SAM2Base
# keys, applied after the MLP renumbering (see hf_sam2_to_meta).
HF_TO_META: List[Tuple[str, str]] = [
    (r'^vision_encoder\.backbone\.', 'image_encoder.trunk.'),
    (r'^vision_encoder\.neck\.convs\.(\d+)\.',
     r'image_encoder.neck.convs.\1.conv.'),
    (r'\.patch_embed\.projection\.', '.patch_embed.proj.'),
    (r'^prompt_encoder\.shared_embedding\.positional_embedding$',
     'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'),
    (r'^prompt_encoder\.mask_embed\.conv1\.',
     'prompt_encoder.mask_downscaling.0.'),
    (r'^prompt_encoder\.mask_embed\.layer_norm1\.',
     'prompt_encoder.mask_downscaling.1.'),
    (r'^prompt_encoder\.mask_embed\.conv2\.',
     'prompt_encoder.mask_downscaling.3.'),
    (r'^prompt_encoder\.mask_embed\.layer_norm2\.',
     'prompt_encoder.mask_downscaling.4.'),
    (r'^prompt_encoder\.mask_embed\.conv3\.',
     'prompt_encoder.mask_downscaling.6.'),
    (r'^prompt_encoder\.', 'sam_prompt_encoder.'),
    (r'^mask_decoder\.upscale_conv1\.', 'mask_decoder.output_upscaling.0.'),
    (r'^mask_decoder\.upscale_layer_norm\.',
     'mask_decoder.output_upscaling.1.'),
    (r'^mask_decoder\.upscale_conv2\.', 'mask_decoder.output_upscaling.3.'),
    (r'^mask_decoder\.', 'sam_mask_decoder.'),
    (r'\.o_proj\.', '.out_proj.'),
    (r'\.layer_norm_final_attn\.', '.norm_final_attn.'),
    (r'\.layer_norm(\d)\.', r'.norm\1.'),
    (r'^no_memory_embedding$', 'no_mem_embed'),
]
_MLP_KEY = re.compile(r'^(.+)\.(proj_in|proj_out|layers\.(\d+))\.(\w+)$')
_POINT_EMBED = 'prompt_encoder.point_embed.weight'
_IMAGE_PE = 'shared_image_embedding.positional_embedding'
_PROMPT_PE = 'prompt_encoder.shared_embedding.positional_embedding'


def hf_mlp_depths(model) -> Dict[str, int]:
    """Depth of every ``Sam2FeedForward`` of an HF SAM 2.1 model.

    Args:
        model (transformers.Sam2Model): The built model.

    Returns:
        dict[str, int]: Module name -> number of linear layers.
    """
    from transformers.models.sam2.modeling_sam2 import Sam2FeedForward
    return {
        name: module.num_layers
        for name, module in model.named_modules()
        if isinstance(module, Sam2FeedForward)
    }


def hf_sam2_to_meta(state: Mapping, mlp_depths: Mapping[str, int],
                    num_point_embeddings: int,
                    source: str) -> Dict[str, Tensor]:
    """Rename an HF ``Sam2Model`` state dict to Meta ``SAM2Base`` keys.

    Args:
        state (Mapping[str, Tensor]): HF keys (``vision_encoder.*``,
            ``prompt_encoder.*``, ``mask_decoder.*``,
            ``shared_image_embedding.positional_embedding``,
            ``no_memory_embedding``).
        mlp_depths (Mapping[str, int]): :func:`hf_mlp_depths`.
        num_point_embeddings (int): ``prompt_encoder_config.
            num_point_embeddings`` (4 in SAM 2.1).
        source (str): Where the weights come from, for error messages.

    Returns:
        dict[str, Tensor]: Meta keys of the image model (``image_encoder.*``,
        ``sam_prompt_encoder.*``, ``sam_mask_decoder.*``, ``no_mem_embed``).
        A key of no known module gets only the generic renames (a strict
        load then reports it as unexpected).

    Raises:
        ValueError: If the two copies of the Gaussian matrix differ, or the
            stacked point embeddings do not have ``num_point_embeddings``
            rows.
    """
    state = dict(state)
    image_pe = state.pop(_IMAGE_PE, None)
    if image_pe is not None and _PROMPT_PE in state and not torch.equal(
            image_pe, state[_PROMPT_PE]):
        raise ValueError(
            f'{source}: {_IMAGE_PE} and {_PROMPT_PE} differ; a SAM 2.1 '
            'converted from Meta holds one random-Fourier matrix twice')
    if image_pe is not None and _PROMPT_PE not in state:
        state[_PROMPT_PE] = image_pe
    out = {}
    for key, value in state.items():
        if key == _POINT_EMBED:
            if value.shape[0] != num_point_embeddings:
                raise ValueError(
                    f'{source}: {key} has {value.shape[0]} rows, the config '
                    f'{num_point_embeddings} point embeddings')
            for i in range(num_point_embeddings):
                out[f'sam_prompt_encoder.point_embeddings.{i}.weight'] = (
                    value[i:i + 1])
            continue
        m = _MLP_KEY.match(key)
        if m and m.group(1) in mlp_depths:
            depth = mlp_depths[m.group(1)]
            i = 0 if m.group(2) == 'proj_in' else (
                depth - 1 if m.group(2) == 'proj_out' else int(m.group(3)) + 1)
            key = f'{m.group(1)}.layers.{i}.{m.group(4)}'
        for pattern, repl in HF_TO_META:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def read_sam2_state_dict(path: str) -> Dict[str, Tensor]:
    """Read SAM 2.1 weights in Meta's ``SAM2Base`` key names.

    Args:
        path (str): An official ``sam2.1_hiera_*.pt`` file
            (``{'model': state_dict}``), or an HF SAM 2.1
            ``save_pretrained`` directory (``config.json`` ``model_type`` in
            :data:`HF_SAM2_MODEL_TYPES`), loaded with
            ``Sam2Model.from_pretrained``, which must find every weight of
            its ``config.json`` architecture, then renamed by
            :func:`hf_sam2_to_meta`.

    Returns:
        dict[str, Tensor]: For a file, everything its ``model`` holds (the
        whole ``SAM2Base``, memory modules included); for a directory, the
        image model (image encoder, SAM heads, ``no_mem_embed``).

    Raises:
        FileNotFoundError: If ``path`` does not exist, or a directory has no
            ``config.json``.
        ValueError: If a file is not a torch checkpoint holding ``model``, or
            a directory's ``config.json`` is invalid or not a SAM 2's.
        StateDictError: If an HF directory lacks weights of its
            architecture (named).
    """
    if osp.isdir(path):
        from transformers import Sam2Model
        found = read_hf_config(path).get('model_type')
        if found not in HF_SAM2_MODEL_TYPES:
            raise ValueError(
                f'{osp.join(path, "config.json")}: model_type is {found!r}, '
                f'expected one of {HF_SAM2_MODEL_TYPES} (SAM 2.1)')
        model = read_hf_pretrained(Sam2Model, path, found)
        return hf_sam2_to_meta(
            model.state_dict(), hf_mlp_depths(model),
            model.config.prompt_encoder_config.num_point_embeddings, path)
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint.get('model'), Mapping):
        raise ValueError(
            f'{path} is not an official SAM 2.1 checkpoint: it has no '
            f"'model' state dict (keys: {sorted(map(str, checkpoint))[:5]})")
    return state_dict_of(checkpoint['model'], path)
