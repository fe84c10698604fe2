# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM 2.1 image encoder, prompt encoder and mask decoder as a decode head."""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.utils.checkpoint
from mmseg.registry import MODELS
from torch import Tensor
from torch.func import functional_call

from mmrsrefseg.utils.checkpoint import (StateDictError, key_problems,
                                         to_module_keys)
from mmrsrefseg.utils.sam2_checkpoint import read_sam2_state_dict
from mmrsrefseg.utils.sam2_import import build_sam2_model, sam2_model_cfg
from .base_sam_head import BaseSAMHead

#: The ``SAM2Base`` modules RSRefSeg 2 uses; the memory attention, memory
#: encoder and the video-tracking parameters are dropped, as the authors do.
SAM2_USED_MODULES = ('image_encoder', 'sam_prompt_encoder', 'sam_mask_decoder',
                     'no_mem_embed')


@MODELS.register_module()
class SAM2PromptHead(BaseSAMHead):
    """SAM 2.1 driven by sparse/dense prompt embeddings (RSRefSeg 2, stage 5).

    The image model of Meta's ``sam2`` 1.1.0 ``SAM2Base``, built from its
    packaged config exactly as ``sam2.build_sam.build_sam2`` builds it, with
    Meta's module names: ``image_encoder`` (Hiera trunk + FPN neck,
    ``scalp=1``: levels at strides 4, 8 and 16), ``sam_prompt_encoder``,
    ``sam_mask_decoder`` (with the ``conv_s0`` / ``conv_s1`` projections of
    the high-resolution levels) and ``no_mem_embed``. An official
    checkpoint's keys are thus this head's keys (the segmentor adds
    ``decode_head.``), and the RSRefSeg 2 authors' released names
    (``backbone.model.*``) map by a prefix. Their composition (RSRefSeg 2,
    arXiv:2507.06231; code ``refseg/models/models.py``, ``RefSegSam``):
    ``forward_image`` with ImageNet normalisation, ``no_mem_embed`` added to
    the stride-16 level, the dense prompt through the prompt encoder's mask
    downscaling (no points or boxes), the mask decoder with
    ``multimask_output=False`` and the high-resolution features; in eval,
    SAM 2.1's dynamic fallback to the most confident of the three multimask
    outputs when the single mask is unstable (``dynamic_multimask``).

    =====================  ===============  =====  ============  ========
    ``preset``             Meta config      width  Hiera stages  used
    =====================  ===============  =====  ============  ========
    ``'tiny'``             sam2.1_hiera_t   96     1, 2, 7, 2    31.4 M
    ``'small'``            sam2.1_hiera_s   96     1, 2, 11, 2   38.5 M
    ``'base_plus'``        sam2.1_hiera_b+  112    2, 3, 16, 3   73.3 M
    ``'large'`` (default)  sam2.1_hiera_l   144    2, 6, 36, 4   216.9 M
    =====================  ===============  =====  ============  ========

    All take 1024x1024 images: image embeddings (B, 256, 64, 64),
    high-resolution features (B, 32, 256, 256) and (B, 64, 128, 128), mask
    logits (B, 1, 256, 256). "Used": parameters of the head; the memory and
    video modules the official files also hold add 7.5 M to each.

    Half precision (module and inputs cast to fp16/bf16, as DeepSpeed bf16
    does): two of ``sam2``'s functions build float32 tensors next to the
    cast weights, fixed here without changing ``sam2``: the FPN neck's
    top-down interpolation runs in float32, which makes the stride-16 level
    float32 (cast back to the weights' dtype here; with the ``nearest``
    interpolation of every SAM 2.1 config this is the authors' half-precision
    sum), and ``PositionEmbeddingRandom`` multiplies float32 coordinates
    with the Gaussian matrix (evaluated here with a float32 copy of the
    matrix, then cast). Prompts are cast to the weights' dtype.

    Args:
        preset (str, optional): SAM 2.1 preset (table above); None to give
            ``sam2_cfg``. Defaults to ``'large'``.
        sam2_cfg (dict, optional): A full ``SAM2Base`` config (hydra
            ``_target_`` tree, e.g. a tiny test model); exclusive with
            ``preset``.
        checkpoint (str, optional): Official ``sam2.1_hiera_*.pt`` file or
            HF SAM 2.1 ``save_pretrained`` directory, loaded strictly in
            :meth:`init_weights` (see :meth:`read_pretrained`). Defaults to
            None.
        dynamic_multimask (bool): In eval, fall back to the best multimask
            output when the single mask is unstable (stability delta 0.05,
            threshold 0.98: ``build_sam2``'s image-predictor setting, the
            authors' model); False always returns mask token 0. Train mode
            always returns mask token 0. Defaults to True.
        pixel_mean (Sequence[float]): ImageNet RGB mean (0-255).
        pixel_std (Sequence[float]): ImageNet RGB std (0-255).
        threshold (float): Probability threshold of the prediction. Defaults
            to 0.5.
        with_cp (bool): Activation checkpointing of the Hiera blocks
            (recomputed in backward). Defaults to False.
        loss_decode (dict | list[dict]): mmseg loss configs. Defaults to the
            authors' BCE x5 + Dice x5 (sigmoid; the Dice on valid pixels,
            see :meth:`loss_by_feat`).
        **kwargs: Further ``BaseDecodeHead`` arguments (``ignore_index``,
            ``align_corners``).

    Raises:
        ValueError: If not exactly one of ``preset`` / ``sam2_cfg`` is
            given, or the config lacks the high-resolution features or the
            direct ``no_mem_embed`` of SAM 2.1.
        KeyError: If ``preset`` is unknown.
    """

    def __init__(self,
                 preset: Optional[str] = 'large',
                 sam2_cfg: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 dynamic_multimask: bool = True,
                 pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
                 pixel_std: Sequence[float] = (58.395, 57.12, 57.375),
                 threshold: float = 0.5,
                 with_cp: bool = False,
                 loss_decode=(dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=True,
                     loss_weight=5.0,
                     loss_name='loss_bce'),
                              dict(
                                  type='DiceLoss',
                                  use_sigmoid=True,
                                  loss_weight=5.0)),
                 **kwargs):
        if (preset is None) == (sam2_cfg is None):
            raise ValueError('SAM2PromptHead: give exactly one of `preset` '
                             f'({preset!r}) and `sam2_cfg`')
        cfg = copy.deepcopy(sam2_cfg) if preset is None else sam2_model_cfg(
            preset, image_predictor=True)
        cfg['sam_mask_decoder_extra_args'] = dict(
            cfg.get('sam_mask_decoder_extra_args') or {},
            dynamic_multimask_via_stability=dynamic_multimask)
        # The FPN's position encoding (unused here) would otherwise be
        # precomputed on cuda:0 at build time, in every process.
        cfg['image_encoder']['neck']['position_encoding']['warmup_cache'] = (
            False)
        super().__init__(
            prompt_channels=cfg['image_encoder']['neck']['d_model'],
            checkpoint=checkpoint,
            threshold=threshold,
            loss_decode=loss_decode,
            **kwargs)
        sam = build_sam2_model(cfg)
        for flag in ('use_high_res_features_in_sam',
                     'directly_add_no_mem_embed'):
            if not getattr(sam, flag):
                raise ValueError(f'SAM2PromptHead needs a SAM 2.1 config '
                                 f'with {flag}=True')
        self.preset = preset
        self.dynamic_multimask = dynamic_multimask
        self.with_cp = with_cp
        self.image_size = sam.image_size
        embed_size = sam.sam_image_embedding_size
        self.image_embedding_size = (embed_size, embed_size)
        self.mask_prompt_size = tuple(sam.sam_prompt_encoder.mask_input_size)
        # Keys and shapes of the dropped modules, which an official file
        # must hold (see read_pretrained).
        self.unused_sam2_shapes = {
            k: tuple(v.shape)
            for k, v in sam.state_dict().items()
            if k.split('.')[0] not in SAM2_USED_MODULES
        }
        self.image_encoder = sam.image_encoder
        self.sam_prompt_encoder = sam.sam_prompt_encoder
        self.sam_mask_decoder = sam.sam_mask_decoder
        self.no_mem_embed = sam.no_mem_embed
        self.register_buffer('pixel_mean',
                             torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer('pixel_std',
                             torch.tensor(pixel_std).view(-1, 1, 1), False)

    def read_pretrained(self) -> Dict[str, Tensor]:
        """The SAM 2.1 weights of ``checkpoint`` under this head's keys.

        ``checkpoint`` is read by :func:`mmrsrefseg.utils.sam2_checkpoint.
        read_sam2_state_dict`. Strictness:

        - An official ``.pt`` file must be exactly the ``SAM2Base`` of this
          config, as Meta's own loader (``sam2.build_sam._load_checkpoint``,
          strict) requires: every tensor of the used modules present and
          shape-equal, every tensor of the dropped memory / video modules
          present and shape-equal too (a file without them is as incomplete
          as one without an encoder key), no other key.
        - An HF directory must hold every weight of its ``config.json``
          architecture (``from_pretrained`` loading info; transformers
          itself skips the memory weights of a ``sam2_video`` directory),
          and the renamed weights must be exactly this head's: none
          missing, unexpected or mis-shaped.

        Returns:
            dict[str, Tensor]: ``image_encoder.*``, ``sam_prompt_encoder.*``,
            ``sam_mask_decoder.*``, ``no_mem_embed`` (LoRA-wrapped layers
            as ``base_layer``).

        Raises:
            ValueError: If ``checkpoint`` is None or not readable.
            FileNotFoundError: If ``checkpoint`` does not exist.
            StateDictError: On missing, unexpected or mis-shaped keys (named,
                with the file).
        """
        if self.checkpoint is None:
            raise ValueError('SAM2PromptHead has no `checkpoint`')
        state = read_sam2_state_dict(self.checkpoint)
        if not osp.isdir(self.checkpoint):
            used = {
                k: v
                for k, v in state.items()
                if k.split('.')[0] in SAM2_USED_MODULES
            }
            problems = key_problems(self.unused_sam2_shapes, {
                k: v
                for k, v in state.items() if k not in used
            })
            if problems:
                raise StateDictError(
                    f'Cannot load {self.checkpoint} strictly: not the '
                    'SAM2Base of this config outside the modules '
                    f'{SAM2_USED_MODULES}: ' + '; '.join(problems))
            state = used
        return to_module_keys(self, state, self.checkpoint)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the head's weights."""
        return self.no_mem_embed.dtype

    def dense_pe(self) -> Tensor:
        """SAM's random-Fourier positional encoding of the embedding grid.

        ``PositionEmbeddingRandom.forward`` multiplies float32 coordinates
        with its Gaussian matrix, which fails when the matrix is half
        precision; it runs here with a float32 copy of the matrix (a no-op in
        float32), then the encoding is cast to the weights' dtype.

        Returns:
            Tensor: (1, C_p, S/16, S/16), the ``image_pe`` of
            ``get_dense_pe()``.
        """
        pe_layer = self.sam_prompt_encoder.pe_layer
        gaussian = pe_layer.positional_encoding_gaussian_matrix
        pe = functional_call(
            pe_layer,
            {'positional_encoding_gaussian_matrix': gaussian.float()},
            (self.image_embedding_size, ))
        return pe.unsqueeze(0).to(self.dtype)

    def _image_encoder_cp(self, x: Tensor) -> List[Tensor]:
        # Hiera.forward and ImageEncoder.forward (sam2/modeling/backbones/
        # hieradet.py, image_encoder.py) with each block checkpointed; the
        # encoder has no such option.
        enc, trunk = self.image_encoder, self.image_encoder.trunk
        x = trunk.patch_embed(x)
        x = x + trunk._get_pos_embed(x.shape[1:3])
        outputs = []
        for i, block in enumerate(trunk.blocks):
            x = torch.utils.checkpoint.checkpoint(
                block, x, use_reentrant=False)
            if i == trunk.stage_ends[-1] or (i in trunk.stage_ends
                                             and trunk.return_interm_layers):
                outputs.append(x.permute(0, 3, 1, 2))
        features, _ = enc.neck(outputs)
        return features[:-enc.scalp] if enc.scalp > 0 else features

    def encode_image(self, inputs: Tensor) -> Dict[str, Tensor]:
        """SAM 2.1 image features of RGB 0-255 images.

        ``SAM2Base.forward_image`` and ``_prepare_backbone_features`` with
        ``no_mem_embed`` added to the stride-16 level, as the authors'
        ``RefSegSam`` (kept as (B, C, h, w) maps instead of flattened).

        Args:
            inputs (Tensor): (B, 3, S, S), S = ``image_size``, RGB 0-255.

        Returns:
            dict: ``image_embeddings`` (B, C_p, S/16, S/16) and
            ``high_res_features``, [(B, C_p/8, S/4, S/4),
            (B, C_p/4, S/8, S/8)] (``conv_s0`` / ``conv_s1`` projections).

        Raises:
            ValueError: If the images are not ``image_size`` square.
        """
        if tuple(inputs.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f'SAM 2.1 expects {self.image_size}x{self.image_size} inputs, '
                f'got {tuple(inputs.shape[-2:])}; resize in the data pipeline')
        x = ((inputs - self.pixel_mean) / self.pixel_std).to(self.dtype)
        if self.with_cp and torch.is_grad_enabled():
            features = self._image_encoder_cp(x)
        else:
            features = self.image_encoder(x)['backbone_fpn']
        decoder = self.sam_mask_decoder
        # The top-down FPN sum is float32 (see the class docstring).
        embeddings = features[-1].to(self.dtype) + self.no_mem_embed.view(
            1, -1, 1, 1)
        return dict(
            image_embeddings=embeddings,
            high_res_features=[
                decoder.conv_s0(features[0]),
                decoder.conv_s1(features[1])
            ])

    def forward(self,
                image_feats: Dict[str, Tensor],
                sparse_embeddings: Tensor,
                mask_prompt: Optional[Tensor] = None) -> Tensor:
        """Run SAM 2.1's prompt encoder and mask decoder, one mask per image.

        Args:
            image_feats (dict): :meth:`encode_image` output.
            sparse_embeddings (Tensor): (B, N, C_p) sparse prompt embeddings.
            mask_prompt (Tensor, optional): (B, 1, S/4, S/4) mask prompt
                logits (dense prompt), through the prompt encoder's mask
                downscaling; None uses its no-mask embedding.

        Returns:
            Tensor: (B, 1, S/4, S/4) mask logits (256x256 at 1024): mask
            token 0, or in eval with ``dynamic_multimask`` the fallback.

        Raises:
            ValueError: If ``mask_prompt`` is not (B, 1, S/4, S/4).
        """
        embeddings = image_feats['image_embeddings']
        if mask_prompt is not None:
            expected = (embeddings.shape[0], 1) + self.mask_prompt_size
            if tuple(mask_prompt.shape) != expected:
                raise ValueError(f'mask_prompt must be {expected}, got '
                                 f'{tuple(mask_prompt.shape)}')
            mask_prompt = mask_prompt.to(self.dtype)
        _, dense = self.sam_prompt_encoder(
            points=None, boxes=None, masks=mask_prompt)
        masks, _, _, _ = self.sam_mask_decoder(
            image_embeddings=embeddings,
            image_pe=self.dense_pe(),
            sparse_prompt_embeddings=sparse_embeddings.to(self.dtype),
            dense_prompt_embeddings=dense,
            multimask_output=False,
            repeat_image=False,
            high_res_features=image_feats['high_res_features'])
        return masks
