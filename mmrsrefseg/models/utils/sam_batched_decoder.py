# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM's mask decoder for a batch of images with one prompt set each.

Modified from segment-anything (``segment_anything/modeling/mask_decoder.py``:
``MaskDecoder.forward`` and ``MaskDecoder.predict_masks``; Copyright (c) Meta
Platforms, Inc. and affiliates, licensed under the Apache License 2.0).

``MaskDecoder.predict_masks`` serves one image with many prompt sets: it
``repeat_interleave``s the image embeddings (and positional encodings) once
per prompt set, so a batch of B images with one prompt set each has to be
decoded image by image (B calls, as segment-anything's ``Sam.forward`` does).
Every layer after that repetition (``TwoWayTransformer``,
``output_upscaling``, the hypernetwork MLPs and the IoU head) acts on each
batch row on its own, so pairing row ``i`` of the image embeddings with row
``i`` of the prompts computes exactly the per-image results in one call.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['batched_mask_decoder_forward']


def batched_mask_decoder_forward(
        mask_decoder: nn.Module,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        multimask_output: bool = False) -> Tuple[Tensor, Tensor]:
    """Run a segment-anything ``MaskDecoder`` on B (image, prompt set) pairs.

    Same as ``torch.cat`` over ``i`` of ``mask_decoder(image_embeddings[i:i +
    1], image_pe, sparse_prompt_embeddings[i:i + 1], dense_prompt_embeddings[
    i:i + 1], multimask_output)``, in one batched pass through the decoder's
    own modules and parameters (nothing is copied).

    Args:
        mask_decoder (nn.Module): segment-anything ``MaskDecoder`` (uses its
            ``iou_token``, ``mask_tokens``, ``transformer``,
            ``output_upscaling``, ``output_hypernetworks_mlps``,
            ``iou_prediction_head``).
        image_embeddings (Tensor): (B, C, h, w) image embeddings.
        image_pe (Tensor): (1, C, h, w) dense positional encoding
            (``PromptEncoder.get_dense_pe()``), shared by all images.
        sparse_prompt_embeddings (Tensor): (B, N, C), one prompt set per
            image.
        dense_prompt_embeddings (Tensor): (B, C, h, w) dense prompt
            embeddings (or (1, C, h, w), broadcast to every image).
        multimask_output (bool): Return the 3 multimask outputs (mask tokens
            1..) instead of the single-mask output (token 0). Defaults to
            False.

    Returns:
        tuple[Tensor, Tensor]: Mask logits (B, M, 4h, 4w) and IoU
        predictions (B, M), M = 1, or ``num_multimask_outputs`` when
        ``multimask_output``.

    Raises:
        ValueError: If the batch sizes, channels or grid sizes disagree.
    """
    b, c, h, w = image_embeddings.shape
    if sparse_prompt_embeddings.dim() != 3 or \
            sparse_prompt_embeddings.shape[0] != b or \
            sparse_prompt_embeddings.shape[2] != c:
        raise ValueError(
            f'sparse_prompt_embeddings must be ({b}, N, {c}) for image '
            f'embeddings {tuple(image_embeddings.shape)}, got '
            f'{tuple(sparse_prompt_embeddings.shape)}')
    if tuple(image_pe.shape) != (1, c, h, w):
        raise ValueError(f'image_pe must be (1, {c}, {h}, {w}), got '
                         f'{tuple(image_pe.shape)}')
    if dense_prompt_embeddings.shape[0] not in (1, b) or tuple(
            dense_prompt_embeddings.shape[1:]) != (c, h, w):
        raise ValueError(
            f'dense_prompt_embeddings must be ({b} or 1, {c}, {h}, {w}), '
            f'got {tuple(dense_prompt_embeddings.shape)}')
    dec = mask_decoder
    # MaskDecoder.predict_masks without the repeat_interleave
    output_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight],
                              dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(b, -1, -1)
    tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)
    src = image_embeddings + dense_prompt_embeddings
    pos_src = image_pe.expand(b, -1, -1, -1)
    hs, src = dec.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1:(1 + dec.num_mask_tokens), :]
    src = src.transpose(1, 2).reshape(b, c, h, w)
    upscaled_embedding = dec.output_upscaling(src)
    hyper_in_list: List[Tensor] = [
        mlp(mask_tokens_out[:, i, :])
        for i, mlp in enumerate(dec.output_hypernetworks_mlps)
    ]
    hyper_in = torch.stack(hyper_in_list, dim=1)
    _, cu, hu, wu = upscaled_embedding.shape
    masks = (hyper_in @ upscaled_embedding.view(b, cu, hu * wu)).view(
        b, -1, hu, wu)
    iou_pred = dec.iou_prediction_head(iou_token_out)
    # MaskDecoder.forward's output selection
    mask_slice = slice(1, None) if multimask_output else slice(0, 1)
    return masks[:, mask_slice], iou_pred[:, mask_slice]
