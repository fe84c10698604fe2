# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM weights in both public formats: segment-anything and HF transformers.

segment-anything's official ``sam_vit_*.pth`` files and HF transformers'
``SamModel.save_pretrained`` directories (what the RSRefSeg authors load,
e.g. ``KyanChen/sam-vit-base``) hold the same tensors under different names.
:func:`hf_sam_to_segment_anything` and :func:`segment_anything_to_hf_sam`
rename one into the other; the name pairs follow transformers'
``models/sam/convert_sam_to_hf.py`` (``KEYS_TO_MODIFY_MAPPING``) and are
checked both ways by the tests on random weights of both libraries.
"""
import json
import os.path as osp
import re
from typing import Dict, List, Tuple

import torch
from torch import Tensor

__all__ = [
    'hf_sam_to_segment_anything', 'segment_anything_to_hf_sam',
    'read_sam_state_dict', 'is_hf_sam_dir'
]

# Ordered (pattern, replacement) rules over whole keys, one list per
# direction (transformers' convert_sam_to_hf.py KEYS_TO_MODIFY_MAPPING).
_SA_TO_HF: List[Tuple[str, str]] = [
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
_HF_TO_SA: List[Tuple[str, str]] = [
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
_MLP = r'^(mask_decoder\.(iou_prediction_head|output_hypernetworks_mlps\.\d+))'
_SA_MLP = re.compile(_MLP + r'\.layers\.(\d+)\.')
_HF_MLP = re.compile(_MLP + r'\.(proj_in|proj_out|layers\.(\d+))\.')


def _rename(key: str, rules: List[Tuple[str, str]]) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def _mlp_depths(keys, pattern: re.Pattern) -> Dict[str, int]:
    """Number of Linear layers (weight + bias keys / 2) of each MLP."""
    counts: Dict[str, int] = {}
    for key in keys:
        m = pattern.match(key)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return {k: v // 2 for k, v in counts.items()}


def segment_anything_to_hf_sam(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Rename a segment-anything ``Sam`` state dict to HF ``SamModel`` keys.

    Args:
        state (dict[str, Tensor]): Keys ``image_encoder.*``,
            ``prompt_encoder.*``, ``mask_decoder.*`` (``pixel_mean`` /
            ``pixel_std`` are dropped: HF keeps them in the processor).

    Returns:
        dict[str, Tensor]: HF keys; the positional Gaussian matrix appears
        twice, as ``shared_image_embedding.positional_embedding`` and
        ``prompt_encoder.shared_embedding.positional_embedding``, as
        ``SamModel`` stores it.
    """
    depths = _mlp_depths(state, _SA_MLP)
    out = {}
    for key, value in state.items():
        if key in ('pixel_mean', 'pixel_std'):
            continue
        m = _SA_MLP.match(key)
        if m:
            i, last = int(m.group(3)), depths[m.group(1)] - 1
            name = 'proj_in' if i == 0 else (
                'proj_out' if i == last else f'layers.{i - 1}')
            key = f'{m.group(1)}.{name}.' + key[m.end():]
        key = _rename(key, _SA_TO_HF)
        out[key] = value
        if key == 'prompt_encoder.shared_embedding.positional_embedding':
            out['shared_image_embedding.positional_embedding'] = value
    return out


def hf_sam_to_segment_anything(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Rename an HF ``SamModel`` state dict to segment-anything ``Sam`` keys.

    Args:
        state (dict[str, Tensor]): HF keys (``vision_encoder.*``,
            ``prompt_encoder.*``, ``mask_decoder.*``,
            ``shared_image_embedding.positional_embedding``).

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
    depths = _mlp_depths(state, _HF_MLP)
    out = {}
    for key, value in state.items():
        m = _HF_MLP.match(key)
        if m:
            last = depths[m.group(1)] - 1
            i = 0 if m.group(3) == 'proj_in' else (
                last if m.group(3) == 'proj_out' else int(m.group(4)) + 1)
            key = f'{m.group(1)}.layers.{i}.' + key[m.end():]
        out[_rename(key, _HF_TO_SA)] = value
    return out


def is_hf_sam_dir(path: str) -> bool:
    """Whether ``path`` is an HF ``SamModel.save_pretrained`` directory."""
    cfg = osp.join(path, 'config.json')
    if not (osp.isdir(path) and osp.isfile(cfg)):
        return False
    with open(cfg, encoding='utf-8') as f:
        return json.load(f).get('model_type') == 'sam'


def read_sam_state_dict(path: str) -> Dict[str, Tensor]:
    """Read SAM weights in segment-anything key names.

    Args:
        path (str): An official segment-anything ``.pth`` state dict (or a
            checkpoint holding it under ``state_dict``), or an HF
            ``SamModel.save_pretrained`` directory (``config.json`` with
            ``model_type: sam`` and ``model.safetensors`` /
            ``pytorch_model.bin``), converted by
            :func:`hf_sam_to_segment_anything`.

    Returns:
        dict[str, Tensor]: segment-anything keys (``pixel_mean`` /
        ``pixel_std`` included when the file has them).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a directory is not an HF SAM directory.
    """
    if osp.isdir(path):
        if not is_hf_sam_dir(path):
            raise ValueError(
                f'{path} is a directory but not an HF SamModel directory '
                '(config.json with "model_type": "sam")')
        from mmrsrefseg.models.backbones.clip_backbone import \
            read_hf_state_dict
        return hf_sam_to_segment_anything(read_hf_state_dict(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'SAM checkpoint not found: {path}')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    return state
