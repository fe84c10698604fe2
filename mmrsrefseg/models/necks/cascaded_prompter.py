# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The cascaded second-order prompter of RSRefSeg 2."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from mmrsrefseg.models.utils.post_norm_attention_layer import \
    PostNormAttentionLayer

TEXT_PADDING_MODES = ('per_sample', 'batch')


def masked_adaptive_avg_pool(tokens: Tensor, mask: Tensor,
                             num_bins: int) -> Tensor:
    """``F.adaptive_avg_pool1d`` over each sample's real tokens only.

    Bin ``i`` of a sample with ``L`` real tokens averages the real tokens of
    rank ``floor(i * L / n)`` to ``ceil((i + 1) * L / n) - 1`` (PyTorch's
    adaptive pooling bins, ``n = num_bins``), so the result equals
    adaptive pooling of the sample alone, without padding.

    Args:
        tokens (Tensor): (B, T, C) token features.
        mask (Tensor): (B, T) bool, True at real tokens (any positions).
        num_bins (int): Number n of output bins.

    Returns:
        Tensor: (B, n, C) bin averages (zeros for a sample without tokens).
    """
    lengths = mask.sum(1)[:, None, None]  # (B, 1, 1)
    rank = (mask.cumsum(1) - 1)[:, None]  # (B, 1, T) rank among real tokens
    i = torch.arange(num_bins, device=tokens.device)[None, :, None]
    start = i * lengths // num_bins
    end = ((i + 1) * lengths + num_bins - 1) // num_bins
    inside = mask[:, None] & (rank >= start) & (rank < end)  # (B, n, T)
    weights = inside / (end - start).clamp(min=1)
    return weights.to(tokens.dtype) @ tokens


@MODELS.register_module()
class CascadedPrompter(BaseModule):
    """Cascaded second-order prompter: SigLIP features -> SAM prompts.

    RSRefSeg 2 (arXiv:2507.06231) as the authors' code computes it
    (KyanChen/RSRefSeg2, ``refseg/models/models.py``: ``CascadedPrompter``
    built by ``configs_RSRefSeg2/rrsisd_training.py``). Every attention step
    is a :class:`PostNormAttentionLayer` ``x = LN(x + Attn(...))``, optionally
    followed by ``x = LN(x + FFN(x))`` ("+FFN" below); every layer has its
    own weights. With text tokens T (B, L, C), image tokens V0 (B, hw, C),
    the pooled text feature t (B, C):

    1. Query init: Q1 = Q2 = adaptive average pooling of T over the tokens to
       ``num_queries`` queries; learnable positional embeddings PE1, PE2
       (added to queries and keys, never to values).
    2. Two-query block (x ``two_query_depth``): self-attention of Q1, of Q2;
       Q1 -> T +FFN; Q2 -> T +FFN; Q1 -> Q2 +FFN; Q2 -> (updated) Q1 +FFN.
    3. Step 1 (x ``step1_depth``): Q1 self-attention; image tokens V
       (starting from V0) -> Q1 +FFN. A learnable image positional embedding
       is added to V wherever V is an attention query or key,
       bicubic-resized (``align_corners=True``) when the feature grid
       differs from ``image_grid``.
    4. Step 2 (x ``step2_depth``): Q2 self-attention; V -> Q2 +FFN; learnable
       prompt tokens P (with their own positional embedding): self-attention,
       P -> Q2 +FFN, P -> V +FFN.
    5. Sparse prompts: FFN without identity (Linear-GELU-Linear) on P.
    6. Dense prompt: V as a (B, C, h, w) map -> conv3x3 (C -> C/2, bias) ->
       norm -> GELU -> conv3x3 (C/2 -> C, bias) -> bilinear
       (``align_corners=True``) to ``mask_prompt_size`` -> cosine similarity
       with t -> ``* logit_scale + logit_bias`` (SigLIP's, from the backbone).

    Everything keeps PyTorch's default initialisation (the authors' prompter
    overrides ``init_weights`` with a no-op): linear and conv layers
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases, norms 1/0,
    the positional, image and prompt embeddings ``N(0, 1)``.

    ``text_padding`` (the authors' text padding is a defect, so ours is the
    default):

    - ``'per_sample'`` (default): padding tokens are excluded from the query
      pooling and from the two attentions over T, so every sample of a batch
      gets its batch-1 output;
    - ``'batch'`` (the authors'): pooling and attention include the padding
      tokens, so a sample's output depends on the longest expression of its
      batch.

    The authors' parameter names (under ``prompter.``) map to ours by
    renaming only (``{i}`` is the layer index). Within a
    :class:`PostNormAttentionLayer`: the attention's ``{q,k,v,out}_proj`` ->
    ``{q,k,v,out}_proj``, the norm after it -> ``norm``, ``mlp.layers.0`` ->
    ``ffn.layers.0.0``, ``mlp.layers.1`` -> ``ffn.layers.1``, the norm after
    the MLP -> ``ffn_norm``. Authors' -> ours:

    - ``text_query_pe_embedding1``, ``2`` -> ``query_pos_embed1``, ``2``;
      ``img_pe`` -> ``image_pos_embed``; ``prompt_embedding`` ->
      ``prompt_embed``; ``prompt_pe_embedding`` -> ``prompt_pos_embed``;
    - ``two_queries_text_attn_layers.{i}.`` -> ``two_query_layers.{i}.``:

      - ``self_attn_query_query1``, ``norm_query1_1`` -> ``q1_self_attn``
      - ``self_attn_query_query2``, ``norm_query2_1`` -> ``q2_self_attn``
      - ``cross_attn_query_text_query1_text``, ``norm_query1_2``,
        ``mlp_query1_2``, ``norm_query1_3`` -> ``q1_text_attn``
      - ``cross_attn_query_text_query2_text``, ``norm_query2_2``,
        ``mlp_query2_2``, ``norm_query2_3`` -> ``q2_text_attn``
      - ``cross_attn_query_query_query1_query2``, ``norm_query1_4``,
        ``mlp_query1_3``, ``norm_query1_5`` -> ``q1_q2_attn``
      - ``cross_attn_query_query_query2_query1``, ``norm_query2_4``,
        ``mlp_query2_3``, ``norm_query2_5`` -> ``q2_q1_attn``

    - ``queries1_to_img_attn_layers.{i}.`` -> ``step1_layers.{i}.``:

      - ``self_attn_text_text_1``, ``norm_text_1`` -> ``query_self_attn``
      - ``cross_attn_img_text_1``, ``norm_img_1``, ``mlp_img_1``,
        ``norm_img_2`` -> ``image_query_attn``

    - ``prompt_queries2_img_attn_layers.{i}.`` -> ``step2_layers.{i}.``:

      - ``self_attn_text_1``, ``norm_text_1`` -> ``query_self_attn``
      - ``cross_attn_img_text_1``, ``norm_img_1``, ``mlp_img_1``,
        ``norm_img_2`` -> ``image_query_attn``
      - ``self_attn_prompt_1``, ``norm_prompt_1`` -> ``prompt_self_attn``
      - ``cross_attn_prompt_text_1``, ``norm_prompt_2``, ``mlp_prompt_2``,
        ``norm_prompt_3`` -> ``prompt_query_attn``
      - ``cross_attn_prompt_img_1``, ``norm_prompt_4``, ``mlp_prompt_3``,
        ``norm_prompt_5`` -> ``prompt_image_attn``

    - ``sparse_prompt_mlp.layers.0``, ``.1`` -> ``sparse_mlp.layers.0.0``,
      ``sparse_mlp.layers.1``;
    - ``dense_prompt_conv.{0,1,3}`` -> ``dense_conv.{0,1,3}`` (conv, norm,
      conv).

    Args:
        in_channels (int): Width C of the SigLIP text and image tokens.
            Defaults to 1152 (so400m).
        prompt_channels (int): SAM's prompt width. Defaults to 256.
        num_queries (int): Queries per set. Defaults to 3.
        num_prompts (int): Sparse prompt tokens. Defaults to 9.
        num_heads (int): Attention heads. Defaults to 8.
        attn_channels (int): Inner width of every attention. Defaults to 512.
        ffn_channels (int): Hidden width of every FFN. Defaults to 512.
        two_query_depth (int): Two-query blocks. Defaults to 2.
        step1_depth (int): Step-1 blocks. Defaults to 2.
        step2_depth (int): Step-2 blocks. Defaults to 2.
        image_grid (tuple[int, int]): Grid of the learnable image positional
            embedding. Defaults to (32, 32) (SigLIP2 at 512 / patch 16).
        mask_prompt_size (tuple[int, int]): Size of the dense prompt, SAM's
            mask-input size. Defaults to (256, 256).
        text_padding (str): ``'per_sample'`` or ``'batch'`` (see above).
            Defaults to ``'per_sample'``.
        norm_cfg (dict): mmcv norm config of the dense branch. Defaults to
            ``dict(type='BN')``, the authors' (not synchronised across
            processes, so the training-mode output depends on the per-process
            batch); ``dict(type='SyncBN')`` synchronises it.
        init_cfg (dict, optional): mmengine init config. Defaults to None.

    Raises:
        ValueError: On an unknown ``text_padding`` or a depth below 1.
    """

    def __init__(self,
                 in_channels: int = 1152,
                 prompt_channels: int = 256,
                 num_queries: int = 3,
                 num_prompts: int = 9,
                 num_heads: int = 8,
                 attn_channels: int = 512,
                 ffn_channels: int = 512,
                 two_query_depth: int = 2,
                 step1_depth: int = 2,
                 step2_depth: int = 2,
                 image_grid: Sequence[int] = (32, 32),
                 mask_prompt_size: Sequence[int] = (256, 256),
                 text_padding: str = 'per_sample',
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if text_padding not in TEXT_PADDING_MODES:
            raise ValueError(f'text_padding must be one of '
                             f'{TEXT_PADDING_MODES}, got {text_padding!r}')
        depths = dict(
            two_query_depth=two_query_depth,
            step1_depth=step1_depth,
            step2_depth=step2_depth)
        for name, depth in depths.items():
            if depth < 1:
                raise ValueError(f'{name} must be >= 1, got {depth}')
        self.in_channels = in_channels
        self.num_queries = num_queries
        self.text_padding = text_padding
        self.mask_prompt_size = tuple(mask_prompt_size)
        c, p = in_channels, prompt_channels

        def layers(depth: int, **spec: Tuple[int, int, bool]):
            """``depth`` blocks of named layers ``(query, key, with FFN)``."""
            return nn.ModuleList(
                nn.ModuleDict({
                    name:
                    PostNormAttentionLayer(query, key, num_heads,
                                           attn_channels,
                                           ffn_channels if with_ffn else None)
                    for name, (query, key, with_ffn) in spec.items()
                }) for _ in range(depth))

        self.query_pos_embed1 = nn.Parameter(torch.randn(num_queries, c))
        self.query_pos_embed2 = nn.Parameter(torch.randn(num_queries, c))
        self.two_query_layers = layers(
            two_query_depth,
            q1_self_attn=(c, c, False),
            q2_self_attn=(c, c, False),
            q1_text_attn=(c, c, True),
            q2_text_attn=(c, c, True),
            q1_q2_attn=(c, c, True),
            q2_q1_attn=(c, c, True))
        self.image_pos_embed = nn.Parameter(torch.randn(1, c, *image_grid))
        self.step1_layers = layers(
            step1_depth,
            query_self_attn=(c, c, False),
            image_query_attn=(c, c, True))
        self.step2_layers = layers(
            step2_depth,
            query_self_attn=(c, c, False),
            image_query_attn=(c, c, True),
            prompt_self_attn=(p, p, False),
            prompt_query_attn=(p, c, True),
            prompt_image_attn=(p, c, True))
        self.prompt_pos_embed = nn.Parameter(torch.randn(num_prompts, p))
        self.prompt_embed = nn.Parameter(torch.randn(num_prompts, p))
        self.sparse_mlp = FFN(
            embed_dims=p,
            feedforward_channels=ffn_channels,
            act_cfg=dict(type='GELU'),
            add_identity=False)
        # Plain conv layers keep PyTorch's default initialisation, as the
        # authors'; mmcv's ConvModule would re-draw them (Kaiming normal,
        # zero bias) whenever init_weights runs. The conv bias before the
        # norm is the authors'.
        self.dense_conv = nn.Sequential(
            nn.Conv2d(c, c // 2, 3, padding=1),
            build_norm_layer(norm_cfg, c // 2)[1], nn.GELU(),
            nn.Conv2d(c // 2, c, 3, padding=1))

    #: Data-sample field of the map :meth:`activation_maps` returns
    #: (recorded by ``mmrsrefseg.visualization.ActivationRecorder``).
    activation_fields = ('dense_prompt_activation', )

    def activation_maps(self, outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The activation map that explains RSRefSeg 2's mask.

        RSRefSeg 2's SigLIP2 activation reaches SAM 2.1 as the dense prompt
        (arXiv:2507.06231): the mask prompt logits, SigLIP's ``logit_scale
        * cos(refined image map, t) + logit_bias``. Their sigmoid is the
        probability map SAM 2.1 is prompted with.

        Args:
            outputs (dict): This neck's :meth:`forward` outputs.

        Returns:
            dict[str, Tensor]: ``dense_prompt_activation``: ``sigmoid`` of
            ``mask_prompt``, (B, *mask_prompt_size) in [0, 1] on SAM 2.1's
            mask-input grid (a quarter of the padded input size).

        Raises:
            KeyError: If ``outputs`` lacks ``mask_prompt``.
        """
        if 'mask_prompt' not in outputs:
            raise KeyError(f'{type(self).__name__} outputs lack '
                           f"'mask_prompt' (got {sorted(outputs)})")
        return dict(
            dense_prompt_activation=torch.sigmoid(outputs['mask_prompt'][:,
                                                                         0]))

    def image_pos_embedding(self, size: Tuple[int, int]) -> Tensor:
        """Image positional embedding as tokens for an (h, w) feature grid.

        Args:
            size (tuple[int, int]): Feature grid (h, w).

        Returns:
            Tensor: (1, h * w, C); bicubic-resized (``align_corners=True``,
            the authors') when (h, w) differs from ``image_grid``.
        """
        pos = self.image_pos_embed
        if tuple(pos.shape[-2:]) != tuple(size):
            pos = F.interpolate(
                pos, size=size, mode='bicubic', align_corners=True)
        return pos.flatten(2).transpose(1, 2)

    def init_queries(self, text_feats: Tensor,
                     text_mask: Optional[Tensor]) -> Tensor:
        """Initial queries Q1 = Q2: text tokens pooled to the query count.

        Args:
            text_feats (Tensor): (B, L, C) text tokens.
            text_mask (Tensor, optional): (B, L) bool, True at real tokens;
                needed with ``text_padding='per_sample'``.

        Returns:
            Tensor: (B, num_queries, C).
        """
        if self.text_padding == 'per_sample':
            return masked_adaptive_avg_pool(text_feats, text_mask,
                                            self.num_queries)
        return F.adaptive_avg_pool1d(
            text_feats.transpose(1, 2), self.num_queries).transpose(1, 2)

    def forward(self, feats: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Turn SigLIP features into SAM prompts.

        Args:
            feats (dict): Backbone outputs: ``visual_feats`` (B, C, h, w)
                dense image tokens V0; ``text_feats`` (B, L, C) text tokens;
                ``text_mask`` (B, L) bool, True at real tokens (used with
                ``text_padding='per_sample'``); ``text_embeds`` (B, C)
                pooled text feature t; ``logit_scale`` (0-d, > 0, already
                exponentiated) and ``logit_bias`` (0-d), SigLIP's.

        Returns:
            dict[str, Tensor]:

            - ``sparse_embeddings`` (B, num_prompts, prompt_channels);
            - ``mask_prompt`` (B, 1, *mask_prompt_size) dense prompt logits,
              ``dense_similarity * logit_scale + logit_bias``;
            - ``dense_similarity`` (B, 1, *mask_prompt_size) cosine
              similarity in [-1, 1] of the refined image map and t (the
              activation map);
            - ``query_mean_1``, ``query_mean_2`` (B, C): Q1 and Q2 after the
              two-query block, averaged over the queries (inputs of the
              query-decorrelation loss; ``query_mean_2`` is the text side of
              the InfoNCE loss).
        """
        visual = feats['visual_feats']
        text = feats['text_feats']
        b, c, h, w = visual.shape
        text_mask = None
        if self.text_padding == 'per_sample':
            text_mask = feats['text_mask']
        pe1, pe2 = self.query_pos_embed1, self.query_pos_embed2
        q1 = q2 = self.init_queries(text, text_mask)
        for blk in self.two_query_layers:
            q1 = blk.q1_self_attn(q1, q1, pe1, pe1)
            q2 = blk.q2_self_attn(q2, q2, pe2, pe2)
            q1 = blk.q1_text_attn(q1, text, pe1, key_mask=text_mask)
            q2 = blk.q2_text_attn(q2, text, pe2, key_mask=text_mask)
            q1 = blk.q1_q2_attn(q1, q2, pe1, pe2)
            q2 = blk.q2_q1_attn(q2, q1, pe2, pe1)

        v = visual.flatten(2).transpose(1, 2)  # (B, hw, C)
        v_pe = self.image_pos_embedding((h, w))
        r1 = q1
        for blk in self.step1_layers:
            r1 = blk.query_self_attn(r1, r1, pe1, pe1)
            v = blk.image_query_attn(v, r1, v_pe, pe1)

        r2 = q2
        p_pe = self.prompt_pos_embed
        prompts = self.prompt_embed.expand(b, -1, -1)
        for blk in self.step2_layers:
            r2 = blk.query_self_attn(r2, r2, pe2, pe2)
            v = blk.image_query_attn(v, r2, v_pe, pe2)
            prompts = blk.prompt_self_attn(prompts, prompts, p_pe, p_pe)
            prompts = blk.prompt_query_attn(prompts, r2, p_pe, pe2)
            prompts = blk.prompt_image_attn(prompts, v, p_pe, v_pe)

        dense = self.dense_conv(v.transpose(1, 2).reshape(b, c, h, w))
        dense = F.interpolate(
            dense,
            size=self.mask_prompt_size,
            mode='bilinear',
            align_corners=True)
        similarity = torch.einsum('bchw,bc->bhw', F.normalize(dense, dim=1),
                                  F.normalize(feats['text_embeds'],
                                              dim=1))[:, None]
        return {
            'sparse_embeddings': self.sparse_mlp(prompts),
            'mask_prompt':
            similarity * feats['logit_scale'] + feats['logit_bias'],
            'dense_similarity': similarity,
            'query_mean_1': q1.mean(1),
            'query_mean_2': q2.mean(1)
        }
