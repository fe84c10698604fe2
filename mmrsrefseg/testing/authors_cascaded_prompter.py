# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The RSRefSeg 2 authors' cascaded prompter, rebuilt for parity tests.

A re-implementation (not a copy) of ``CascadedPrompter`` and its blocks in
the authors' ``refseg/models/models.py`` (KyanChen/RSRefSeg2), restricted to
the variant every released config builds (``configs_RSRefSeg2/*_training.py``:
``textpool`` query init, learnable query/prompt embeddings and position
embeddings, a learnable image position embedding, the dense prompt from the
refined SigLIP map through ``dense_prompt_conv`` and ``preup``). Attribute
names equal theirs, so ``state_dict()`` has the key layout of their
``prompter.*`` checkpoint entries.

Their blocks are driven by lists of operation names; each name creates a
sub-module of that name, and its prefix says what it does (``norm_*`` replaces
its stream, every other operation is added to it)::

    self_attn_query_query{i}             Q_i += Attn(Q_i + P_i, Q_i + P_i, Q_i)
    cross_attn_query_text_query{i}_text  Q_i += Attn(Q_i + P_i, T, T)
    cross_attn_query_query_query1_query2 Q_1 += Attn(Q_1 + P_1, Q_2 + P_2, Q_2)
    cross_attn_query_query_query2_query1 Q_2 += Attn(Q_2 + P_2, Q_1 + P_1, Q_1)
    self_attn_text*                      t += Attn(t + P_t, t + P_t, t)
    cross_attn_img_text*                 v += Attn(v + P_v, t + P_t, t)
    self_attn_prompt*                    p += Attn(p + P_p, p + P_p, p)
    cross_attn_prompt_text*              p += Attn(p + P_p, t + P_t, t)
    cross_attn_prompt_img*               p += Attn(p + P_p, v + P_v, v)
    mlp_{stream}*                        x += MLP(x)
    norm_{stream}*                       x = LayerNorm(x)

``Attn`` projects q, k, v with biased linears to ``internal_dim``, runs
multi-head scaled-dot-product attention (no mask: padding tokens of the text
are attended to, no dropout) and projects back with a biased linear. Every
weight keeps PyTorch's default initialisation (their ``init_weights`` is a
no-op); the query/prompt/position embeddings are ``torch.randn``.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    'TWO_QUERIES_OPS', 'QUERIES1_TO_IMG_OPS', 'PROMPT_QUERIES2_IMG_OPS',
    'AuthorsCascadedPrompter'
]

# The operation orders of configs_RSRefSeg2/{rrsisd,refsegrs,risbench}_
# training.py (identical in the three).
TWO_QUERIES_OPS = (
    'self_attn_query_query1', 'norm_query1_1',
    'self_attn_query_query2', 'norm_query2_1',
    'cross_attn_query_text_query1_text', 'norm_query1_2', 'mlp_query1_2',
    'norm_query1_3',
    'cross_attn_query_text_query2_text', 'norm_query2_2', 'mlp_query2_2',
    'norm_query2_3',
    'cross_attn_query_query_query1_query2', 'norm_query1_4', 'mlp_query1_3',
    'norm_query1_5',
    'cross_attn_query_query_query2_query1', 'norm_query2_4', 'mlp_query2_3',
    'norm_query2_5')  # yapf: disable
QUERIES1_TO_IMG_OPS = ('self_attn_text_text_1', 'norm_text_1',
                       'cross_attn_img_text_1', 'norm_img_1', 'mlp_img_1',
                       'norm_img_2')
PROMPT_QUERIES2_IMG_OPS = (
    'self_attn_text_1', 'norm_text_1',
    'cross_attn_img_text_1', 'norm_img_1', 'mlp_img_1', 'norm_img_2',
    'self_attn_prompt_1', 'norm_prompt_1',
    'cross_attn_prompt_text_1', 'norm_prompt_2', 'mlp_prompt_2',
    'norm_prompt_3',
    'cross_attn_prompt_img_1', 'norm_prompt_4', 'mlp_prompt_3',
    'norm_prompt_5')  # yapf: disable


class _Attention(nn.Module):
    """Their ``Attention``: linear q/k/v/out around multi-head SDPA."""

    def __init__(self,
                 query_dim: int,
                 num_heads: int,
                 internal_dim: int,
                 kv_dim: Optional[int] = None):
        super().__init__()
        kv_dim = query_dim if kv_dim is None else kv_dim
        if internal_dim % num_heads:
            raise ValueError(f'internal_dim {internal_dim} is not divisible '
                             f'by num_heads {num_heads}')
        self.num_heads = num_heads
        self.q_proj = nn.Linear(query_dim, internal_dim)
        self.k_proj = nn.Linear(kv_dim, internal_dim)
        self.v_proj = nn.Linear(kv_dim, internal_dim)
        self.out_proj = nn.Linear(internal_dim, query_dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.num_heads,
                      c // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = F.scaled_dot_product_attention(
            self._heads(self.q_proj(q)), self._heads(self.k_proj(k)),
            self._heads(self.v_proj(v)))
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


class _MLP(nn.Module):
    """Their ``MLP``: ``layers`` of linears, GELU between them."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(in_dim, hidden_dim),
             nn.Linear(hidden_dim, out_dim)])
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.layers[1](self.act(self.layers[0](x)))


def _stream_op(name: str, streams: Sequence[str]) -> Tuple[str, str]:
    """(kind, stream) of an operation name: kind in attn / mlp / norm."""
    for kind in ('norm', 'mlp'):
        for stream in streams:
            if name.startswith(f'{kind}_{stream}'):
                return kind, stream
    return 'attn', ''


class _TwoQueryBlock(nn.Module):
    """Their ``TwoQueryTextCrossAttentionBlock`` (Q1, Q2 and the text T)."""

    def __init__(self,
                 dim: int,
                 text_dim: int,
                 num_heads: int,
                 mlp_dim: int,
                 internal_dim: int,
                 ops: Sequence[str] = TWO_QUERIES_OPS):
        super().__init__()
        self.ops = tuple(ops)
        for op in self.ops:
            kind, _ = _stream_op(op, ('query1', 'query2'))
            if kind == 'norm':
                module = nn.LayerNorm(dim)
            elif kind == 'mlp':
                module = _MLP(dim, mlp_dim, dim)
            else:
                kv = text_dim if op.startswith('cross_attn_query_text') \
                    else dim
                module = _Attention(dim, num_heads, internal_dim, kv)
            self.add_module(op, module)

    def forward(self, q1: Tensor, q2: Tensor, text: Tensor, pe1: Tensor,
                pe2: Tensor) -> Tuple[Tensor, Tensor]:
        for op in self.ops:
            kind, stream = _stream_op(op, ('query1', 'query2'))
            module = getattr(self, op)
            if kind != 'attn':
                first = stream == 'query1'
                x = q1 if first else q2
                x = module(x) if kind == 'norm' else x + module(x)
                q1, q2 = (x, q2) if first else (q1, x)
                continue
            if op.startswith('self_attn_query_query1'):
                first, out = True, module(q1 + pe1, q1 + pe1, q1)
            elif op.startswith('self_attn_query_query2'):
                first, out = False, module(q2 + pe2, q2 + pe2, q2)
            elif op.startswith('cross_attn_query_text_query1'):
                first, out = True, module(q1 + pe1, text, text)
            elif op.startswith('cross_attn_query_text_query2'):
                first, out = False, module(q2 + pe2, text, text)
            elif op.startswith('cross_attn_query_query_query1_query2'):
                first, out = True, module(q1 + pe1, q2 + pe2, q2)
            elif op.startswith('cross_attn_query_query_query2_query1'):
                first, out = False, module(q2 + pe2, q1 + pe1, q1)
            else:
                raise ValueError(f'Unknown two-query operation {op!r}')
            q1, q2 = (q1 + out, q2) if first else (q1, q2 + out)
        return q1, q2


class _PITBlock(nn.Module):
    """Their ``PITCrossAttentionBlock`` (prompts p, image v, text t)."""

    def __init__(self, dims: Dict[str, int], num_heads: int, mlp_dim: int,
                 internal_dim: int, ops: Sequence[str]):
        super().__init__()
        self.ops = tuple(ops)
        kv_of = dict(
            self_attn_prompt=('prompt', 'prompt'),
            self_attn_text=('text', 'text'),
            cross_attn_img_text=('img', 'text'),
            cross_attn_prompt_text=('prompt', 'text'),
            cross_attn_prompt_img=('prompt', 'img'))
        for op in self.ops:
            kind, stream = _stream_op(op, ('prompt', 'img', 'text'))
            if kind == 'norm':
                module = nn.LayerNorm(dims[stream])
            elif kind == 'mlp':
                module = _MLP(dims[stream], mlp_dim, dims[stream])
            else:
                q, kv = next(v for k, v in kv_of.items() if op.startswith(k))
                module = _Attention(dims[q], num_heads, internal_dim, dims[kv])
            self.add_module(op, module)

    def forward(self, streams: Dict[str, Tensor],
                pes: Dict[str, Tensor]) -> Dict[str, Tensor]:
        streams = dict(streams)
        for op in self.ops:
            kind, stream = _stream_op(op, ('prompt', 'img', 'text'))
            module = getattr(self, op)
            if kind == 'norm':
                streams[stream] = module(streams[stream])
                continue
            if kind == 'mlp':
                streams[stream] = streams[stream] + module(streams[stream])
                continue
            p, v, t = streams['prompt'], streams['img'], streams['text']
            pp, vp, tp = pes['prompt'], pes['img'], pes['text']
            if op.startswith('self_attn_text'):
                stream, out = 'text', module(t + tp, t + tp, t)
            elif op.startswith('cross_attn_img_text'):
                stream, out = 'img', module(v + vp, t + tp, t)
            elif op.startswith('self_attn_prompt'):
                stream, out = 'prompt', module(p + pp, p + pp, p)
            elif op.startswith('cross_attn_prompt_text'):
                stream, out = 'prompt', module(p + pp, t + tp, t)
            else:  # cross_attn_prompt_img
                stream, out = 'prompt', module(p + pp, v + vp, v)
            streams[stream] = streams[stream] + out
        return streams


class AuthorsCascadedPrompter(nn.Module):
    """The authors' ``CascadedPrompter`` as configured for RSRefSeg 2.

    Args:
        text_dim (int): SigLIP text width D_t (1152). Also the query width.
        img_dim (int): SigLIP vision width D_v (1152).
        prompt_dim (int): SAM prompt width C (256).
        img_pe_size (int): Side of the learnable image position embedding
            (their ``imgpe_config.size`` = ``dst_size`` = 32).
        num_text_queries (int): Queries per set (3).
        num_prompts (int): Sparse prompts (9).
        num_heads (int): Attention heads (8).
        mlp_dim (int): MLP hidden width (512).
        internal_dim (int): Attention inner width (512).
        depth (int): Layers of each of the three stages (2).
    """

    def __init__(self,
                 text_dim: int = 1152,
                 img_dim: int = 1152,
                 prompt_dim: int = 256,
                 img_pe_size: int = 32,
                 num_text_queries: int = 3,
                 num_prompts: int = 9,
                 num_heads: int = 8,
                 mlp_dim: int = 512,
                 internal_dim: int = 512,
                 depth: int = 2):
        super().__init__()
        self.num_text_queries = num_text_queries
        self.text_query_pe_embedding1 = nn.Parameter(
            torch.randn(num_text_queries, text_dim))
        self.text_query_pe_embedding2 = nn.Parameter(
            torch.randn(num_text_queries, text_dim))
        self.two_queries_text_attn_layers = nn.ModuleList([
            _TwoQueryBlock(text_dim, text_dim, num_heads, mlp_dim,
                           internal_dim) for _ in range(depth)
        ])
        self.img_pe = nn.Parameter(
            torch.randn(1, img_dim, img_pe_size, img_pe_size))
        dims = dict(prompt=prompt_dim, img=img_dim, text=text_dim)
        self.queries1_to_img_attn_layers = nn.ModuleList([
            _PITBlock(dims, num_heads, mlp_dim, internal_dim,
                      QUERIES1_TO_IMG_OPS) for _ in range(depth)
        ])
        self.prompt_queries2_img_attn_layers = nn.ModuleList([
            _PITBlock(dims, num_heads, mlp_dim, internal_dim,
                      PROMPT_QUERIES2_IMG_OPS) for _ in range(depth)
        ])
        self.prompt_pe_embedding = nn.Parameter(
            torch.randn(num_prompts, prompt_dim))
        self.prompt_embedding = nn.Parameter(
            torch.randn(num_prompts, prompt_dim))
        self.sparse_prompt_mlp = _MLP(prompt_dim, mlp_dim, prompt_dim)
        self.dense_prompt_conv = nn.Sequential(
            nn.Conv2d(img_dim, img_dim // 2, 3, padding=1),
            nn.BatchNorm2d(img_dim // 2), nn.GELU(),
            nn.Conv2d(img_dim // 2, img_dim, 3, padding=1))

    def forward(self, clip_visual_feat: Tensor, clip_text_feat: Tensor,
                clip_text_feat_pooler: Tensor, logit_scale: Tensor,
                logit_bias: Tensor, mask_size: int) -> Dict[str, Tensor]:
        """The authors' ``CascadedPrompter.forward`` (configured variant).

        Args:
            clip_visual_feat (Tensor): V0, SigLIP vision ``last_hidden_state``
                (B, g*g, D_v), g = SigLIP grid side (32).
            clip_text_feat (Tensor): T, text ``last_hidden_state`` (B, L, D_t)
                (padding included).
            clip_text_feat_pooler (Tensor): t, text ``pooler_output``
                (B, D_t).
            logit_scale (Tensor): SigLIP's text ``logit_scale`` (1,).
            logit_bias (Tensor): SigLIP's text ``logit_bias`` (1,).
            mask_size (int): SAM's mask-prompt side (4 x the embedding side,
                256).

        Returns:
            dict: ``sparse_prompts`` (B, num_prompts, C);
            ``dense_prompts`` (B, 1, mask_size, mask_size) logits =
            cos(conv(V), t) * exp(scale) + bias; ``text_queries1`` /
            ``text_queries2`` (B, 3, D_t) after the two-query block;
            ``clip_pool_text`` t; ``refined_img_feat_map`` (B, D_v, g, g)
            after step 2; ``clip_visual_feat_map`` (B, D_v, g, g) = V0.
        """
        b, n, d = clip_visual_feat.shape
        g = int(math.sqrt(n))
        to_map = (lambda x: x.transpose(1, 2).reshape(b, -1, g, g))
        pe1 = self.text_query_pe_embedding1.expand(b, -1, -1)
        pe2 = self.text_query_pe_embedding2.expand(b, -1, -1)
        # 'textpool': average pooling over all L positions (padding too)
        q1 = F.adaptive_avg_pool1d(
            clip_text_feat.transpose(1, 2),
            self.num_text_queries).transpose(1, 2)
        q2 = q1
        for layer in self.two_queries_text_attn_layers:
            q1, q2 = layer(q1, q2, clip_text_feat, pe1, pe2)
        img_pe = self.img_pe
        if img_pe.size(2) != g:
            img_pe = F.interpolate(
                img_pe, size=(g, g), mode='bicubic', align_corners=True)
        img_pe = img_pe.flatten(2).transpose(1, 2)
        streams = dict(prompt=None, img=clip_visual_feat, text=q1)
        for layer in self.queries1_to_img_attn_layers:  # step 1
            streams = layer(streams, dict(prompt=None, img=img_pe, text=pe1))
        prompt = self.prompt_embedding.expand(b, -1, -1)
        prompt_pe = self.prompt_pe_embedding.expand(b, -1, -1)
        streams = dict(prompt=prompt, img=streams['img'], text=q2)
        for layer in self.prompt_queries2_img_attn_layers:  # step 2
            streams = layer(streams,
                            dict(prompt=prompt_pe, img=img_pe, text=pe2))
        sparse = self.sparse_prompt_mlp(streams['prompt'])
        refined = to_map(streams['img'])
        feat = F.interpolate(
            self.dense_prompt_conv(refined),
            size=(mask_size, mask_size),
            mode='bilinear',
            align_corners=True)
        feat = feat / feat.norm(p=2, dim=1, keepdim=True)
        text = clip_text_feat_pooler / clip_text_feat_pooler.norm(
            p=2, dim=1, keepdim=True)
        dense = torch.einsum('bchw,bc->bhw', feat, text).unsqueeze(1)
        dense = dense * logit_scale.exp() + logit_bias
        return dict(
            sparse_prompts=sparse,
            dense_prompts=dense,
            text_queries1=q1,
            text_queries2=q2,
            clip_pool_text=clip_text_feat_pooler,
            refined_img_feat_map=refined,
            clip_visual_feat_map=to_map(clip_visual_feat))
