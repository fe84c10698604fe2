# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM weights in both public formats: segment-anything and HF transformers.

segment-anything's official ``sam_vit_*.pth`` files and HF transformers'
``SamModel.save_pretrained`` directories (what the RSRefSeg authors load,
e.g. ``KyanChen/sam-vit-base``) hold the same tensors under different names.
:func:`hf_sam_to_segment_anything` renames HF keys to segment-anything keys;
the name pairs follow transformers' ``models/sam/convert_sam_to_hf.py``
(``KEYS_TO_MODIFY_MAPPING``). The MLP depths, which the two libraries spell
differently, come from the architecture (``config.json``), never from
counting keys.
"""
import os.path as osp
import re
from typing import Dict, List, Tuple

import torch
from torch import Tensor

from .checkpoint import read_checkpoint, read_hf_pretrained, state_dict_of

__all__ = [
    'hf_sam_to_segment_anything', 'read_sam_state_dict', 'rename_key',
    'SA_TO_HF', 'HF_TO_SA', 'SA_MLP', 'HF_MLP', 'HYPERNETWORK_MLP_DEPTH'
]

#: Depth of the mask decoder's hypernetwork MLPs (fixed in both libraries:
#: segment-anything ``MLP(..., 3)``, transformers ``SamFeedForward(..., 3)``).
HYPERNETWORK_MLP_DEPTH = 3

# Ordered (pattern, replacement) rules over whole keys, one list per
# direction (transformers' convert_sam_to_hf.py KEYS_TO_MODIFY_MAPPING).
SA_TO_HF: List[Tuple[str, str]] = [
    (r'^image_encoder\.', 'vision_encoder.'),
    (r'\.patch_embed\.proj\.', '.patch_embed.projection.'),
    (r'^vision_encoder\.blocks\.', 'vision_encoder.layers.'),
    (r'\.neck\.0\.', '.neck.conv1.'),
    (r'\.neck\.1\.', '.neck.layer_norm1.'),
    (r'\.neck\.2\.', '.neck.conv2.'),
    (r'\.neck\.3\.', '.neck.layer_norm2.'),
    (r'\.pe_layer\.positional_encoding_gaussian_matrix$',
     '.shared_embedding.positional_embedding'),
    (r'\.point_embeddings\.', '.point_embed.'),
    (r'\.mask_downscaling\.0\.', '.mask_embed.conv1.'),
    (r'\.mask_downscaling\.1\.', '.mask_embed.layer_norm1.'),
    (r'\.mask_downscaling\.3\.', '.mask_embed.conv2.'),
    (r'\.mask_downscaling\.4\.', '.mask_embed.layer_norm2.'),
    (r'\.mask_downscaling\.6\.', '.mask_embed.conv3.'),
    (r'\.output_upscaling\.0\.', '.upscale_conv1.'),
    (r'\.output_upscaling\.1\.', '.upscale_layer_norm.'),
    (r'\.output_upscaling\.3\.', '.upscale_conv2.'),
    (r'\.norm_final_attn\.', '.layer_norm_final_attn.'),
    (r'\.norm(\d)\.', r'.layer_norm\1.'),
]
HF_TO_SA: List[Tuple[str, str]] = [
    (r'^vision_encoder\.', 'image_encoder.'),
    (r'\.patch_embed\.projection\.', '.patch_embed.proj.'),
    (r'^image_encoder\.layers\.', 'image_encoder.blocks.'),
    (r'\.neck\.conv1\.', '.neck.0.'),
    (r'\.neck\.layer_norm1\.', '.neck.1.'),
    (r'\.neck\.conv2\.', '.neck.2.'),
    (r'\.neck\.layer_norm2\.', '.neck.3.'),
    (r'\.shared_embedding\.positional_embedding$',
     '.pe_layer.positional_encoding_gaussian_matrix'),
    (r'\.point_embed\.', '.point_embeddings.'),
    (r'\.mask_embed\.conv1\.', '.mask_downscaling.0.'),
    (r'\.mask_embed\.layer_norm1\.', '.mask_downscaling.1.'),
    (r'\.mask_embed\.conv2\.', '.mask_downscaling.3.'),
    (r'\.mask_embed\.layer_norm2\.', '.mask_downscaling.4.'),
    (r'\.mask_embed\.conv3\.', '.mask_downscaling.6.'),
    (r'\.upscale_conv1\.', '.output_upscaling.0.'),
    (r'\.upscale_layer_norm\.', '.output_upscaling.1.'),
    (r'\.upscale_conv2\.', '.output_upscaling.3.'),
    (r'\.layer_norm_final_attn\.', '.norm_final_attn.'),
    (r'\.layer_norm(\d)\.', r'.norm\1.'),
]
# segment-anything's MLP (``layers.0 .. layers.L-1``) is HF's
# ``SamFeedForward`` (``proj_in``, ``layers.0 .. layers.L-3``, ``proj_out``).
MLP_PREFIX = (r'^(mask_decoder\.'
              r'(iou_prediction_head|output_hypernetworks_mlps\.\d+))')
SA_MLP = re.compile(MLP_PREFIX + r'\.layers\.(\d+)\.')
HF_MLP = re.compile(MLP_PREFIX + r'\.(proj_in|proj_out|layers\.(\d+))\.')


def rename_key(key: str, rules: List[Tuple[str, str]]) -> str:
    """Apply ordered ``(pattern, replacement)`` rules (:data:`SA_TO_HF`,
    :data:`HF_TO_SA`) to one key."""
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def hf_sam_to_segment_anything(state: Dict[str, Tensor],
                               iou_head_depth: int = 3) -> Dict[str, Tensor]:
    """Rename an HF ``SamModel`` state dict to segment-anything ``Sam`` keys.

    Args:
        state (dict[str, Tensor]): HF keys (``vision_encoder.*``,
            ``prompt_encoder.*``, ``mask_decoder.*``,
            ``shared_image_embedding.positional_embedding``).
        iou_head_depth (int): Linear layers of the IoU head
            (``mask_decoder_config.iou_head_depth``; 3 in every SAM).

    Returns:
        dict[str, Tensor]: segment-anything keys, without ``pixel_mean`` /
        ``pixel_std``.

    Raises:
        ValueError: If the two copies of the positional Gaussian matrix
            differ (an inconsistent checkpoint).
    """
    state = dict(state)
    shared = state.pop('shared_image_embedding.positional_embedding', None)
    key = 'prompt_encoder.shared_embedding.positional_embedding'
    if shared is not None and key not in state:
        state[key] = shared
    elif shared is not None and not torch.equal(shared, state[key]):
        raise ValueError(
            'HF SAM checkpoint: shared_image_embedding.positional_embedding '
            f'and {key} differ')
    out = {}
    for key, value in state.items():
        m = HF_MLP.match(key)
        if m:
            depth = (
                iou_head_depth if m.group(2) == 'iou_prediction_head' else
                HYPERNETWORK_MLP_DEPTH)
            i = 0 if m.group(3) == 'proj_in' else (
                depth - 1 if m.group(3) == 'proj_out' else int(m.group(4)) + 1)
            key = f'{m.group(1)}.layers.{i}.' + key[m.end():]
        out[rename_key(key, HF_TO_SA)] = value
    return out


def read_sam_state_dict(path: str) -> Dict[str, Tensor]:
    """Read SAM weights in segment-anything key names.

    Args:
        path (str): An official segment-anything ``.pth`` state dict (or a
            checkpoint holding it under ``state_dict``), or an HF
            ``SamModel.save_pretrained`` directory (``config.json`` with
            ``model_type: sam``), loaded with ``from_pretrained``, which must
            find every weight of its ``config.json`` architecture, then
            renamed by :func:`hf_sam_to_segment_anything`.

    Returns:
        dict[str, Tensor]: segment-anything keys (``pixel_mean`` /
        ``pixel_std`` included when the file has them).

    Raises:
        FileNotFoundError: If ``path`` does not exist, or a directory has no
            ``config.json``.
        ValueError: If a file is not a torch checkpoint, or a directory's
            ``config.json`` is invalid or not a SAM's.
        StateDictError: If an HF directory lacks weights of its
            architecture (named).
    """
    if osp.isdir(path):
        from transformers import SamModel
        model = read_hf_pretrained(SamModel, path, 'sam')
        return hf_sam_to_segment_anything(
            model.state_dict(),
            model.config.mask_decoder_config.iou_head_depth)
    return state_dict_of(read_checkpoint(path), path)
