# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Post-norm residual attention layer of the cascaded prompter."""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor

__all__ = ['PostNormAttentionLayer']


class PostNormAttentionLayer(nn.Module):
    """Multi-head attention with a post-norm residual, optionally + an FFN.

    Computes, for queries ``x`` (B, Nq, Cq) and keys ``y`` (B, Nk, Ck)::

        x = LN(x + Attn(q=x + query_pos, k=y + key_pos, v=y))
        x = LN'(x + FFN(x))                     # when ffn_channels is set

    ``Attn`` projects q, k and v with biased linear layers to
    ``attn_channels`` (which may differ from both input widths), runs
    :func:`torch.nn.functional.scaled_dot_product_attention` over
    ``num_heads`` heads (scale ``1 / sqrt(attn_channels / num_heads)``), and
    projects back to ``Cq`` with a biased linear layer. The FFN is mmcv's
    ``FFN`` (Linear -> GELU -> Linear, identity added), no dropout.
    Self-attention is ``layer(x, x, query_pos=pe, key_pos=pe)``.

    This is one attention (+ MLP) step of RSRefSeg 2's cascaded prompter
    (arXiv:2507.06231; the authors' code, KyanChen/RSRefSeg2,
    ``refseg/models/models.py``: ``Attention`` (the SAM 2 attention with an
    explicit inner width and key width), ``MLP`` with two layers, and the
    ``x = x + out`` / ``x = norm(x)`` steps of ``PITCrossAttentionBlock`` and
    ``TwoQueryTextCrossAttentionBlock``). mmcv's ``MultiheadAttention`` wraps
    :class:`torch.nn.MultiheadAttention`, whose inner width must equal the
    query width, so it cannot hold these weights.

    Authors' parameter names map to ours by renaming only: attention
    ``{q,k,v,out}_proj`` -> ``{q,k,v,out}_proj``; the norm after it ->
    ``norm``; ``mlp.layers.0`` -> ``ffn.layers.0.0``; ``mlp.layers.1`` ->
    ``ffn.layers.1``; the norm after the MLP -> ``ffn_norm``.

    Args:
        query_channels (int): Width Cq of the queries (and of the output).
        key_channels (int): Width Ck of the keys/values.
        num_heads (int): Number of attention heads; divides
            ``attn_channels``.
        attn_channels (int): Inner width of the attention.
        ffn_channels (int, optional): Hidden width of the FFN; None for an
            attention-only layer. Defaults to None.

    Raises:
        ValueError: If ``num_heads`` does not divide ``attn_channels``.
    """

    def __init__(self,
                 query_channels: int,
                 key_channels: int,
                 num_heads: int,
                 attn_channels: int,
                 ffn_channels: Optional[int] = None):
        super().__init__()
        if attn_channels % num_heads:
            raise ValueError(f'num_heads={num_heads} does not divide '
                             f'attn_channels={attn_channels}')
        self.num_heads = num_heads
        self.q_proj = nn.Linear(query_channels, attn_channels)
        self.k_proj = nn.Linear(key_channels, attn_channels)
        self.v_proj = nn.Linear(key_channels, attn_channels)
        self.out_proj = nn.Linear(attn_channels, query_channels)
        self.norm = nn.LayerNorm(query_channels)
        self.ffn = None
        if ffn_channels is not None:
            self.ffn = FFN(
                embed_dims=query_channels,
                feedforward_channels=ffn_channels,
                act_cfg=dict(type='GELU'),
                add_identity=True)
            self.ffn_norm = nn.LayerNorm(query_channels)

    def _split_heads(self, x: Tensor) -> Tensor:
        """(B, N, C) -> (B, heads, N, C / heads)."""
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads,
                         c // self.num_heads).transpose(1, 2)

    def forward(self,
                query: Tensor,
                key: Tensor,
                query_pos: Optional[Tensor] = None,
                key_pos: Optional[Tensor] = None,
                key_mask: Optional[Tensor] = None) -> Tensor:
        """Attend from ``query`` to ``key``, then the residuals and norms.

        Args:
            query (Tensor): (B, Nq, Cq) queries; also the residual input.
            key (Tensor): (B, Nk, Ck) keys, also used as the values.
            query_pos (Tensor, optional): Positional embedding added to the
                queries before the projection, broadcastable to ``query``.
            key_pos (Tensor, optional): Positional embedding added to the
                keys (not the values), broadcastable to ``key``.
            key_mask (Tensor, optional): (B, Nk) bool, True for the keys
                that may be attended (each row needs one True); None attends
                to all keys.

        Returns:
            Tensor: (B, Nq, Cq) updated queries.
        """
        q = query if query_pos is None else query + query_pos
        k = key if key_pos is None else key + key_pos
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(key))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).flatten(2)
        x = self.norm(query + self.out_proj(out))
        if self.ffn is not None:
            x = self.ffn_norm(self.ffn(x))
        return x
