# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM image encoder, prompt encoder and mask decoder as a decode head."""
from functools import partial
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.utils.checkpoint
from mmseg.registry import MODELS
from torch import Tensor

from mmrsrefseg.models.utils import (batched_mask_decoder_forward,
                                     replace_sam_attention)
from mmrsrefseg.utils.checkpoint import to_module_keys
from mmrsrefseg.utils.sam_checkpoint import read_sam_state_dict
from mmrsrefseg.utils.sam_import import import_segment_anything
from .base_sam_head import BaseSAMHead

# Identical to segment_anything.build_sam.build_sam_vit_{b,l,h}.
SAM_PRESETS = {
    'vit_b':
    dict(
        embed_dim=768,
        depth=12,
        num_heads=12,
        global_attn_indexes=(2, 5, 8, 11)),
    'vit_l':
    dict(
        embed_dim=1024,
        depth=24,
        num_heads=16,
        global_attn_indexes=(5, 11, 17, 23)),
    'vit_h':
    dict(
        embed_dim=1280,
        depth=32,
        num_heads=16,
        global_attn_indexes=(7, 15, 23, 31)),
}


def sam_architecture(sam_type: Optional[str] = 'vit_b',
                     encoder_cfg: Optional[dict] = None,
                     decoder_cfg: Optional[dict] = None):
    """SAM's image-encoder and mask-decoder sizes for a preset + overrides.

    Args:
        sam_type (str, optional): A :data:`SAM_PRESETS` key or None (ViT-B's
            sizes, overridden by ``encoder_cfg``).
        encoder_cfg (dict, optional): Overrides of ``embed_dim``, ``depth``,
            ``num_heads``, ``global_attn_indexes``, ``window_size``,
            ``patch_size``.
        decoder_cfg (dict, optional): Overrides of ``transformer_depth``,
            ``mlp_dim``, ``num_heads``, ``num_multimask_outputs``,
            ``iou_head_depth``, ``iou_head_hidden_dim``.

    Returns:
        tuple[dict, dict]: Encoder and decoder sizes.

    Raises:
        ValueError: On an unknown ``sam_type``.
    """
    enc = dict(
        depth=12,
        embed_dim=768,
        num_heads=12,
        patch_size=16,
        global_attn_indexes=(2, 5, 8, 11),
        window_size=14)
    if sam_type is not None:
        if sam_type not in SAM_PRESETS:
            raise ValueError(f'Unknown sam_type {sam_type!r}; choose from '
                             f'{sorted(SAM_PRESETS)} or None')
        enc.update(SAM_PRESETS[sam_type])
    enc.update(encoder_cfg or {})
    dec = dict(
        transformer_depth=2,
        mlp_dim=2048,
        num_heads=8,
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256)
    dec.update(decoder_cfg or {})
    return enc, dec


@MODELS.register_module()
class SAMPromptHead(BaseSAMHead):
    """SAM driven by sparse/dense prompt embeddings (RSRefSeg stages 1, 7, 8).

    Wraps ``segment_anything.modeling`` (``ImageEncoderViT``,
    ``PromptEncoder``, ``MaskDecoder`` with a ``TwoWayTransformer``), built
    exactly like ``segment_anything.build_sam`` for the presets, and keeps the
    official attribute names (``image_encoder``, ``prompt_encoder``,
    ``mask_decoder``, ``pixel_mean``, ``pixel_std``) so that an official
    ``sam_vit_*.pth`` loads strictly.

    :meth:`encode_image` gives SAM's image embeddings; the head's forward
    takes them and the prompts produced by the neck through SAM's prompt
    encoder and mask decoder and returns the low-resolution mask logits with
    ``multimask_output=False``; the segmentor upsamples them. Loss: the
    configured mmseg losses on logits upsampled to the label size (BCE with
    weight 5 in the reference).

    Args:
        sam_type (str, optional): ``'vit_b'``, ``'vit_l'`` or ``'vit_h'``
            preset; None to give ``encoder_cfg`` explicitly.
        encoder_cfg (dict, optional): Overrides of ``ImageEncoderViT``
            arguments (e.g. tiny ``embed_dim``/``depth``/``num_heads``/
            ``global_attn_indexes``/``window_size``/``patch_size``).
        image_size (int): SAM's input size in pixels. Defaults to 1024.
        prompt_channels (int): Prompt width C_p. Defaults to 256.
        decoder_cfg (dict, optional): Overrides of the mask decoder
            (``transformer_depth`` 2, ``mlp_dim`` 2048, ``num_heads`` 8,
            ``iou_head_hidden_dim`` 256, ``num_multimask_outputs`` 3).
        transformer_norm_eps (float): Epsilon of the eight LayerNorms inside
            the blocks of the mask decoder's two-way transformer. Defaults
            to 1e-6, the authors' (transformers' ``SamMaskDecoder``,
            ``layer_norm_eps``, which their code trains); 1e-5 gives
            segment-anything's modules as released (PyTorch's default). The
            transformer's final LayerNorm has 1e-5 in both.
        checkpoint (str, optional): Official SAM ``.pth`` state dict or HF
            ``SamModel`` directory, loaded strictly in :meth:`init_weights`.
            Defaults to None.
        pixel_mean (Sequence[float]): SAM's RGB mean (0-255).
        pixel_std (Sequence[float]): SAM's RGB std (0-255).
        threshold (float): Probability threshold of the prediction. Defaults
            to 0.5.
        with_cp (bool): Activation checkpointing of the image encoder's
            blocks (recomputed in backward): trades compute for memory, e.g.
            ViT-L at 1024x1024 on a 24 GB device. Defaults to False.
        attn_impl (str): Attention of the image encoder's blocks (see
            :func:`mmrsrefseg.models.utils.replace_sam_attention`; the same
            function and parameter names in every case): ``'auto'``
            (default: in the global-attention blocks ``'flex'`` for CUDA
            inputs and ``'sdpa_folded'`` otherwise, decided per call; the
            windowed blocks ``'sdpa_folded'``), ``'flex'`` (FlexAttention
            with the relative positions as a ``score_mod``, compiled on
            CUDA), ``'sdpa_folded'`` (``scaled_dot_product_attention`` with
            the decomposed relative positions folded into q and k, no N x N
            tensor), ``'sdpa_mask'`` (relative positions as an SDPA mask, as
            SAM 2 / transformers' SAM) or ``'original'``
            (segment-anything's ``Attention``, which materialises every
            attention matrix).
        batched_decoder (bool): Decode all images of a batch in one pass of
            the mask decoder (each image with its own prompt set) instead of
            one call per image as segment-anything's ``Sam.forward``; same
            result. Defaults to True.
        loss_decode (dict | list[dict]): mmseg loss configs. Defaults to BCE
            (sigmoid) with weight 5.
        **kwargs: Further ``BaseDecodeHead`` arguments (``ignore_index``,
            ``align_corners``).
    """

    def __init__(self,
                 sam_type: Optional[str] = 'vit_b',
                 encoder_cfg: Optional[dict] = None,
                 image_size: int = 1024,
                 prompt_channels: int = 256,
                 decoder_cfg: Optional[dict] = None,
                 transformer_norm_eps: float = 1e-6,
                 checkpoint: Optional[str] = None,
                 pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
                 pixel_std: Sequence[float] = (58.395, 57.12, 57.375),
                 threshold: float = 0.5,
                 with_cp: bool = False,
                 attn_impl: str = 'auto',
                 batched_decoder: bool = True,
                 loss_decode=dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=True,
                     loss_weight=5.0),
                 **kwargs):
        super().__init__(
            prompt_channels=prompt_channels,
            checkpoint=checkpoint,
            threshold=threshold,
            loss_decode=loss_decode,
            **kwargs)
        modeling, _ = import_segment_anything()
        enc, dec = sam_architecture(sam_type, encoder_cfg, decoder_cfg)
        enc.update(
            img_size=image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            qkv_bias=True,
            use_rel_pos=True,
            out_chans=prompt_channels)
        self.sam_type = sam_type
        self.with_cp = with_cp
        self.image_size = image_size
        embed_size = image_size // enc['patch_size']
        self.image_embedding_size = (embed_size, embed_size)
        self.mask_prompt_size = (4 * embed_size, 4 * embed_size)
        self.image_encoder = modeling.ImageEncoderViT(**enc)
        self.attn_impl = attn_impl
        if attn_impl != 'original':
            replace_sam_attention(self.image_encoder, attn_impl)
        self.batched_decoder = batched_decoder
        self.prompt_encoder = modeling.PromptEncoder(
            embed_dim=prompt_channels,
            image_embedding_size=self.image_embedding_size,
            input_image_size=(image_size, image_size),
            mask_in_chans=16)
        self.mask_decoder = modeling.MaskDecoder(
            num_multimask_outputs=dec['num_multimask_outputs'],
            transformer=modeling.TwoWayTransformer(
                depth=dec['transformer_depth'],
                embedding_dim=prompt_channels,
                mlp_dim=dec['mlp_dim'],
                num_heads=dec['num_heads']),
            transformer_dim=prompt_channels,
            iou_head_depth=dec['iou_head_depth'],
            iou_head_hidden_dim=dec['iou_head_hidden_dim'])
        self.transformer_norm_eps = transformer_norm_eps
        for block in self.mask_decoder.transformer.layers:
            for i in range(1, 5):
                getattr(block, f'norm{i}').eps = transformer_norm_eps
        self.register_buffer('pixel_mean',
                             torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer('pixel_std',
                             torch.tensor(pixel_std).view(-1, 1, 1), False)

    def read_pretrained(self) -> Dict[str, Tensor]:
        """The SAM weights of ``checkpoint`` under this module's key names.

        ``checkpoint`` is an official segment-anything ``sam_vit_*.pth`` or
        an HF ``SamModel.save_pretrained`` directory (what the RSRefSeg
        authors load, e.g. ``KyanChen/sam-vit-base``), read by
        :func:`mmrsrefseg.utils.sam_checkpoint.read_sam_state_dict`. The
        ``pixel_mean`` / ``pixel_std`` an official file stores must equal
        the configured ones.

        Returns:
            dict[str, Tensor]: ``image_encoder.*``, ``prompt_encoder.*``,
            ``mask_decoder.*`` (LoRA-wrapped layers as ``base_layer``).

        Raises:
            ValueError: If ``checkpoint`` is None, not readable, or its
                pixel statistics differ from the configured ones.
            FileNotFoundError: If ``checkpoint`` does not exist.
            StateDictError: On missing, unexpected or mis-shaped keys.
        """
        if self.checkpoint is None:
            raise ValueError('SAMPromptHead has no `checkpoint`')
        state = dict(read_sam_state_dict(self.checkpoint))
        for key in ('pixel_mean', 'pixel_std'):
            if key in state:
                value = state.pop(key).flatten().to(torch.float32)
                own = getattr(self, key).flatten().cpu()
                if not torch.allclose(value, own, rtol=0, atol=1e-3):
                    raise ValueError(
                        f'{self.checkpoint}: {key} {value.tolist()} differs '
                        f'from the configured {own.tolist()} (decode_head.'
                        f'{key})')
        # the head's state is SAM's image_encoder / prompt_encoder /
        # mask_decoder, exactly what an official file holds
        return to_module_keys(self, state, self.checkpoint)

    def dense_pe(self, size: Tuple[int, int]) -> Tensor:
        """SAM's random-Fourier positional encoding at ``size``.

        segment-anything's ``PositionEmbeddingRandom`` builds float32 grid
        coordinates and multiplies them with its Gaussian buffer, which fails
        once the module is cast to half precision (DeepSpeed fp16, or
        ``model.half()``). The encoding is therefore computed by that very
        module with a float32 view of the buffer (also more accurate: the
        sine arguments reach about 2 pi |G|, where half precision keeps two
        or three significant digits) and returned in the buffer's dtype.
        Under autocast the matmul still runs in the autocast dtype, as in
        segment-anything.

        Args:
            size (tuple[int, int]): (h, w) grid size.

        Returns:
            Tensor: (C_p, h, w), in the dtype of the prompt encoder's
            buffers (float32 unless the model was cast).
        """
        pe_layer = self.prompt_encoder.pe_layer
        gaussian = pe_layer.positional_encoding_gaussian_matrix
        if gaussian.dtype == torch.float32:
            return pe_layer(tuple(size))
        pe = torch.func.functional_call(
            pe_layer,
            {'positional_encoding_gaussian_matrix': gaussian.float()},
            (tuple(size), ))
        return pe.to(gaussian.dtype)

    def encode_image(self, inputs: Tensor) -> Tensor:
        """SAM image embeddings of RGB 0-255 images.

        Args:
            inputs (Tensor): (B, 3, S, S), S = ``image_size``, RGB 0-255.

        Returns:
            Tensor: (B, C_p, S/16, S/16) image embeddings.

        Raises:
            ValueError: If the images are not ``image_size`` square.
        """
        if tuple(inputs.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f'SAM expects {self.image_size}x{self.image_size} inputs, got '
                f'{tuple(inputs.shape[-2:])}; resize in the data pipeline')
        x = (inputs - self.pixel_mean) / self.pixel_std
        if not (self.with_cp and torch.is_grad_enabled()):
            return self.image_encoder(x)
        # ImageEncoderViT.forward (segment_anything/modeling/image_encoder.py)
        # with each block checkpointed; the encoder has no such option.
        enc = self.image_encoder
        x = enc.patch_embed(x)
        if enc.pos_embed is not None:
            x = x + enc.pos_embed
        for block in enc.blocks:
            x = torch.utils.checkpoint.checkpoint(
                block, x, use_reentrant=False)
        return enc.neck(x.permute(0, 3, 1, 2))

    def forward(self,
                image_embeddings: Tensor,
                sparse_embeddings: Tensor,
                mask_prompt: Optional[Tensor] = None) -> Tensor:
        """Run SAM's prompt encoder and mask decoder.

        Args:
            image_embeddings (Tensor): (B, C_p, h, w) SAM image embeddings.
            sparse_embeddings (Tensor): (B, N, C_p).
            mask_prompt (Tensor, optional): (B, 1, 4h, 4w) mask prompt
                logits (dense prompt); None uses SAM's no-mask embedding.

        Returns:
            Tensor: (B, 1, 4h, 4w) mask logits (256x256 for SAM at 1024).
        """
        sparse_pe, dense = self.prompt_encoder(
            points=None, boxes=None, masks=mask_prompt)
        b = image_embeddings.shape[0]
        sparse = torch.cat([
            sparse_pe.expand(b, -1, -1).to(sparse_embeddings),
            sparse_embeddings
        ],
                           dim=1)
        dense = dense.expand(b, -1, -1, -1)
        # PromptEncoder.get_dense_pe(), in the model's dtype (see dense_pe)
        image_pe = self.dense_pe(self.image_embedding_size).unsqueeze(0)
        if self.batched_decoder:
            return batched_mask_decoder_forward(self.mask_decoder,
                                                image_embeddings, image_pe,
                                                sparse, dense)[0]
        # SAM's MaskDecoder repeats the image embeddings once per prompt set
        # (one image, many prompts); with one prompt set per image, decode
        # image by image, exactly as segment_anything's Sam does.
        masks = [
            self.mask_decoder(
                image_embeddings=image_embeddings[i:i + 1],
                image_pe=image_pe,
                sparse_prompt_embeddings=sparse[i:i + 1],
                dense_prompt_embeddings=dense[i:i + 1],
                multimask_output=False)[0] for i in range(b)
        ]
        return torch.cat(masks, dim=0)
