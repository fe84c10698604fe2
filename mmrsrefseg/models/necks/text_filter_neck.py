# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Text-filtered activation features and the SAM prompter of RSRefSeg."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor


def global_activation_logits(visual_feats: Tensor, text_embeds: Tensor,
                             scale: Tensor, bias) -> Tensor:
    """Global activation logits ``Z_g = s * cos(V, g) + b``.

    RSRefSeg stage 4 (arXiv:2501.06809, Sec. III-B), also the objective of
    ``tools/misc/pretrain_tiny_clip.py``.

    Args:
        visual_feats (Tensor): Dense patch features V of shape (B, C, h, w).
        text_embeds (Tensor): Pooled sentence features g of shape (B, C).
        scale (Tensor): Similarity scale s (0-d, > 0).
        bias (Tensor | float): Similarity bias b.

    Returns:
        Tensor: (B, h, w) logits, unbounded.
    """
    v_n = F.normalize(visual_feats, dim=1)
    g_n = F.normalize(text_embeds, dim=-1)
    return scale * torch.einsum('bchw,bc->bhw', v_n, g_n) + bias


@MODELS.register_module()
class TextFilterNeck(BaseModule):
    """Filter CLIP's visual features with the referring expression.

    Implements RSRefSeg stages 4-6 (arXiv:2501.06809, Sec. III-B/III-C and the
    authors' reference code), with cosine similarity on L2-normalised
    features, scale ``s`` and bias ``b``:

    - local activation ``A_l = sigmoid(s * cos(V, L_t) + b)`` (B, T, h, w) and
      local feature ``F_l = (V + mean_t(A_l[t] * V)) / 2`` where the mean runs
      over the *real* tokens only (the reference code averages padding
      tokens too, which makes a sample's output depend on the other
      expressions in its batch). Since ``V`` does not depend on ``t`` this is
      computed as ``V * (1 + mean_t A_l) / 2`` without a (B, T, C, h, w)
      tensor;
    - global activation logits ``Z_g = s * cos(V, g) + b`` (B, h, w) and
      global feature ``F_g = sigmoid(Z_g) * V``;
    - ``[F_l, F_g, V]`` (B, 3C, h, w) -> prompter: 1x1 conv-norm-GELU to the
      prompt width, + SAM's dense positional encoding at (h, w), ``k``
      stride-2 3x3 conv-norm-GELU blocks, a final 1x1 conv -> sparse prompt
      embeddings (B, N, C_p), N = h_k * w_k (49 for 27x27 and k = 2);
    - optional dense prompt: ``Z_g`` bilinearly upsampled to SAM's mask-input
      size (4x the image-embedding size, 256x256 for SAM at 1024) as the mask
      prompt logits.

    Where ``s`` and ``b`` come from (``logit_mode``):

    - ``'backbone'``: both from the backbone (SigLIP has both; the paper's
      setting);
    - ``'backbone_scale'``: ``s`` from the backbone, ``b`` a learnable neck
      parameter initialised to ``logit_bias_init``. Our choice for OpenAI
      CLIP, which has no bias: its ``exp(logit_scale)`` (100 when trained) is
      calibrated for a softmax over a batch, and a sigmoid of it without an
      offset saturates at 1 for every pixel.

    The prompter's conv-norm-GELU blocks are mmcv ``ConvModule``s, built as
    the authors build them (``rsris/models/models.py``:
    ``prompter_down_channel``, ``prompter_down_spatial``), so their
    initialisation is the authors' too (``ConvModule.init_weights``:
    Kaiming-normal fan-out convolutions, zero bias, norm weight 1, bias 0).

    Args:
        in_channels (int): Width C of the joint CLIP embedding space.
        prompt_channels (int): SAM's prompt width C_p. Defaults to 256.
        num_downsample (int): Number k of stride-2 blocks. Defaults to 2.
        use_dense_prompt (bool): Output the mask prompt. Defaults to True.
        mask_prompt_size (tuple[int, int]): Size of the mask prompt.
            Defaults to (256, 256).
        logit_mode (str): ``'backbone'`` or ``'backbone_scale'`` (see
            above). Defaults to ``'backbone'``.
        logit_bias_init (float): Initial learnable bias. Defaults to -10
            (SigLIP's initialisation).
        norm_cfg (dict): Norm of the prompter's conv blocks: an mmcv norm
            config, e.g. ``dict(type='LN2d', eps=1e-6)`` (SAM's
            ``LayerNorm2d``, registered by mmrsrefseg).
            Defaults to ``dict(type='SyncBN', requires_grad=True)``, the
            authors' (``configs_RSRefSeg/RSRefSeg-b.py``; mmengine's runner
            turns SyncBN into BN when not distributed). BN makes a sample's
            training-mode output depend on its batch (as in the authors'
            code); ``LN2d`` does not.
        init_cfg (dict, optional): mmengine init config.

    Raises:
        ValueError: On an unknown ``logit_mode``, or (at forward) when
            ``logit_mode='backbone'`` but the backbone has no bias.
    """

    def __init__(self,
                 in_channels: int,
                 prompt_channels: int = 256,
                 num_downsample: int = 2,
                 use_dense_prompt: bool = True,
                 mask_prompt_size: Tuple[int, int] = (256, 256),
                 logit_mode: str = 'backbone',
                 logit_bias_init: float = -10.,
                 norm_cfg: dict = dict(type='SyncBN', requires_grad=True),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.prompt_channels = prompt_channels
        self.num_downsample = num_downsample
        self.use_dense_prompt = use_dense_prompt
        self.mask_prompt_size = tuple(mask_prompt_size)
        if logit_mode not in ('backbone', 'backbone_scale'):
            raise ValueError(f'Unknown logit_mode {logit_mode!r}')
        self.logit_mode = logit_mode
        if logit_mode == 'backbone_scale':
            self.logit_bias = nn.Parameter(
                torch.tensor(float(logit_bias_init)))
        self.norm_cfg = dict(norm_cfg)
        act_cfg = dict(type='GELU')
        self.input_proj = ConvModule(
            3 * in_channels,
            prompt_channels,
            1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.downsample = nn.Sequential(*[
            ConvModule(
                prompt_channels,
                prompt_channels,
                3,
                stride=2,
                padding=1,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg) for _ in range(num_downsample)
        ])
        self.output_proj = ConvModule(
            prompt_channels, prompt_channels, 1, norm_cfg=None, act_cfg=None)

    #: Data-sample fields of the maps :meth:`activation_maps` returns
    #: (recorded by ``mmrsrefseg.visualization.ActivationRecorder``).
    activation_fields = ('global_activation', 'mean_local_activation')

    def activation_maps(self, outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The activation maps that explain RSRefSeg's mask.

        RSRefSeg explains a mask by the text-filtered activation of CLIP's
        patch features (arXiv:2501.06809, Sec. III-B).

        Args:
            outputs (dict): This neck's :meth:`forward` outputs.

        Returns:
            dict[str, Tensor]: On CLIP's patch grid (B, h, w), in [0, 1]:
            ``global_activation`` ``sigmoid(Z_g)`` (of ``global_logits``)
            and ``mean_local_activation`` (the local activation averaged
            over the expression's real tokens).

        Raises:
            KeyError: If ``outputs`` lacks ``global_logits`` or
                ``mean_local_activation``.
        """
        missing = [
            k for k in ('global_logits', 'mean_local_activation')
            if k not in outputs
        ]
        if missing:
            raise KeyError(f'{type(self).__name__} outputs lack {missing} '
                           f'(got {sorted(outputs)}); activation maps need '
                           "TextFilterNeck's outputs")
        return dict(
            global_activation=torch.sigmoid(outputs['global_logits']),
            mean_local_activation=outputs['mean_local_activation'])

    def scale_bias(self, feats: Dict[str, Tensor]) -> Tuple[Tensor, Tensor]:
        """Return the similarity scale ``s`` and bias ``b`` (0-d tensors)."""
        if self.logit_mode == 'backbone_scale':
            return feats['logit_scale'], self.logit_bias
        if feats.get('logit_bias') is None:
            raise ValueError(
                "logit_mode='backbone' needs a backbone with a logit bias "
                "(SigLIP); use 'backbone_scale' for CLIP")
        return feats['logit_scale'], feats['logit_bias']

    def activations(self, feats: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Compute the local and global activation maps.

        Args:
            feats (dict): Backbone outputs: ``visual_feats`` (B, C, h, w),
                ``text_feats`` (B, T, C), ``text_mask`` (B, T) bool,
                ``text_embeds`` (B, C), ``logit_scale``, ``logit_bias``.

        Returns:
            dict: ``local_activation`` (B, T, h, w) in [0, 1] (0 at padding
            tokens), ``mean_local_activation`` (B, h, w) in [0, 1] (mean
            over the real tokens), ``global_logits`` (B, h, w) (``Z_g``,
            unbounded), ``activation_features`` (B, 3C, h, w) =
            ``[F_l, F_g, V]``.
        """
        v = feats['visual_feats']
        mask = feats['text_mask'].to(v.dtype)
        s, b = self.scale_bias(feats)
        v_n = F.normalize(v, dim=1)
        t_n = F.normalize(feats['text_feats'], dim=-1)
        local = torch.sigmoid(s * torch.einsum('bchw,btc->bthw', v_n, t_n) +
                              b) * mask[:, :, None, None]
        mean_local = local.sum(1) / mask.sum(1).clamp(min=1)[:, None, None]
        f_local = v * (1 + mean_local[:, None]) / 2
        z_global = global_activation_logits(v, feats['text_embeds'], s, b)
        f_global = torch.sigmoid(z_global)[:, None] * v
        return {
            'local_activation': local,
            'mean_local_activation': mean_local,
            'global_logits': z_global,
            'activation_features': torch.cat([f_local, f_global, v], dim=1)
        }

    def forward(self, feats: Dict[str, Tensor],
                pos_embed: Tensor) -> Dict[str, Optional[Tensor]]:
        """Turn backbone features into SAM prompts.

        Args:
            feats (dict): Backbone outputs (see :meth:`activations`).
            pos_embed (Tensor): (C_p, h, w) SAM's dense positional encoding
                at the CLIP feature size (``PromptEncoder.pe_layer((h, w))``).

        Returns:
            dict: ``sparse_embeddings`` (B, N, C_p); ``mask_prompt``
            (B, 1, *mask_prompt_size) logits or None when
            ``use_dense_prompt`` is False; ``global_logits`` (B, h, w);
            ``local_activation`` (B, T, h, w).
        """
        act = self.activations(feats)
        x = self.input_proj(act.pop('activation_features'))
        if pos_embed.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f'pos_embed {tuple(pos_embed.shape)} does not match the '
                f'feature size {tuple(x.shape[-2:])}')
        x = x + pos_embed.unsqueeze(0).to(x.dtype)
        x = self.output_proj(self.downsample(x))
        act['sparse_embeddings'] = x.flatten(2).transpose(1, 2)
        act['mask_prompt'] = None
        if self.use_dense_prompt:
            act['mask_prompt'] = F.interpolate(
                act['global_logits'][:, None],
                size=self.mask_prompt_size,
                mode='bilinear',
                align_corners=False)
        return act
