# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM image-encoder attention with ``scaled_dot_product_attention``.

Modified from segment-anything (``segment_anything/modeling/
image_encoder.py``: ``Attention``, ``get_rel_pos``, ``add_decomposed_rel_pos``;
Copyright (c) Meta Platforms, Inc. and affiliates, licensed under the
Apache License 2.0).

segment-anything's ``Attention`` materialises the attention matrix and its
softmax, ``(B * heads, N, N)`` each (N = 4096 tokens in the global blocks at
1024x1024 input). :class:`SAMSDPAAttention` computes the same function with
:func:`torch.nn.functional.scaled_dot_product_attention` (SDPA) and keeps the
parameter names ``qkv``, ``proj``, ``rel_pos_h``, ``rel_pos_w``, so official
``sam_vit_*.pth`` state dicts load strictly into either module.

The decomposed relative positions of MViTv2 add, for query token ``i = (y, x)``
and key token ``j = (y', x')``, ``rel_h[i, y'] + rel_w[i, x']`` to the logit
``scale * q_i . k_j``. Three ways to compute the attention with them:

* ``'sdpa_mask'``: an additive ``attn_mask`` of shape ``(B, heads, N, N)``.
  The bias is materialised, and because it needs a gradient (it depends on
  ``q`` and on ``rel_pos_*``), PyTorch's fused CPU kernel refuses it in
  training and SDPA runs its math fallback (which materialises the
  attention matrix as well).
* ``'sdpa_folded'`` (no ``N x N`` tensor at all): the bias is folded into the
  dot product. With one-hot indicators ``E_h[j, y'] = [row(j) == y']`` and
  ``E_w[j, x'] = [col(j) == x']``::

      [scale * q_i, rel_h_i, rel_w_i] . [k_j, E_h[j], E_w[j]]
          = scale * q_i . k_j + rel_h[i, row(j)] + rel_w[i, col(j)],

  so SDPA runs with ``scale=1`` on query/key of head dim ``d + H + W``.
  PyTorch's fused (flash) kernels need equal query/key/value head dims, so
  ``v`` is zero-padded to that dim (and all three to a multiple of 8) and the
  padding is sliced off the output; the zero columns do not change the
  result. The head dim grows from ``d`` to ``d + H + W`` (64 -> 192 in
  SAM ViT-B's global blocks): three times the attention work.
* ``'flex'`` (no ``N x N`` tensor, no padded head dim):
  :func:`torch.nn.attention.flex_attention` with a ``score_mod`` that adds
  ``rel_h[b, head, i, j // W] + rel_w[b, head, i, j % W]`` to each scaled
  logit. On CUDA the function holding it is ``torch.compile``-d once, so
  that PyTorch generates one fused (flash-style) kernel for the forward and
  one for the backward, gradients of ``rel_h`` / ``rel_w`` included. On CPU
  FlexAttention runs its unfused reference (it materialises the scores)
  and PyTorch (2.13) refuses its backward there ("FlexAttention does not
  support backward on CPU").
* ``'auto'`` (the default of ``SAMPromptHead``): ``'flex'`` for CUDA
  inputs, ``'sdpa_folded'`` otherwise, decided at each call from the input's
  device (so a model built on the CPU and moved to a GPU switches).
  :func:`replace_sam_attention` gives ``'auto'`` to the global-attention
  blocks only (the whole token grid, where the padding triples the work)
  and ``'sdpa_folded'`` to the windowed ones.
  ``'sdpa_folded'`` is what was measured best on CPU for RSRefSeg-b (the
  fastest inference and the least memory; ``'sdpa_mask'`` trains a global
  block faster but keeps 0.7 GiB more per block, see the README); the CUDA
  choice follows from the padded head dim above and is not yet measured.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention.flex_attention import flex_attention

from mmrsrefseg.utils.sam_import import import_segment_anything

__all__ = [
    'SAMSDPAAttention', 'replace_sam_attention', 'SAM_ATTENTION_IMPLS',
    'flex_rel_pos_attention'
]

SAM_ATTENTION_IMPLS = ('auto', 'flex', 'sdpa_folded', 'sdpa_mask', 'original')
#: Implementations of :class:`SAMSDPAAttention` itself.
_MODULE_IMPLS = ('auto', 'flex', 'sdpa_folded', 'sdpa_mask')

_SAM_GET_REL_POS = None


def _sam_get_rel_pos():
    """segment-anything's ``get_rel_pos``, imported once.

    Resolved when the first :class:`SAMSDPAAttention` is built, so that the
    forward does not run the import machinery (``sys.modules`` lookups that
    torch.compile cannot trace).
    """
    global _SAM_GET_REL_POS
    if _SAM_GET_REL_POS is None:
        modeling, _ = import_segment_anything()
        _SAM_GET_REL_POS = modeling.image_encoder.get_rel_pos
    return _SAM_GET_REL_POS


def _get_rel_pos(q_size: int, k_size: int, rel_pos: Tensor) -> Tensor:
    """segment-anything's ``get_rel_pos`` (imported, not copied)."""
    return _sam_get_rel_pos()(q_size, k_size, rel_pos)


def flex_rel_pos_attention(q: Tensor, k: Tensor, v: Tensor, rel_h: Tensor,
                           rel_w: Tensor, scale: float) -> Tensor:
    """Attention with decomposed relative positions through FlexAttention.

    ``softmax(scale * q k^T + rel_h[.., i, row(j)] + rel_w[.., i, col(j)]) v``
    with ``row(j) = j // W`` and ``col(j) = j % W`` for key token ``j`` of a
    row-major ``H x W`` grid; the ``N x N`` bias is never formed.

    Args:
        q, k, v (Tensor): (B, heads, N, d), N = H * W, one dtype.
        rel_h (Tensor): (B, heads, N, H) logits over key rows.
        rel_w (Tensor): (B, heads, N, W) logits over key columns.
        scale (float): Logit scale of ``q k^T``.

    Returns:
        Tensor: (B, heads, N, d).
    """
    w = rel_w.shape[-1]

    def score_mod(score, b, h, q_idx, kv_idx):
        return (score + rel_h[b, h, q_idx, kv_idx // w] +
                rel_w[b, h, q_idx, kv_idx % w])

    return flex_attention(q, k, v, score_mod=score_mod, scale=scale)


_COMPILED_FLEX = None


def _compiled_flex_rel_pos_attention() -> Callable:
    """:func:`flex_rel_pos_attention` compiled once (fused CUDA kernels).

    Uncompiled, FlexAttention materialises the scores; compiled, it is one
    generated kernel per pass. Shapes are static (a new token grid or batch
    compiles once more).
    """
    global _COMPILED_FLEX
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex_rel_pos_attention, dynamic=False)
    return _COMPILED_FLEX


class SAMSDPAAttention(nn.Module):
    """Multi-head attention with decomposed relative positions, via SDPA.

    Same arguments, parameters and function as segment-anything's
    ``image_encoder.Attention`` (Modified from segment-anything,
    Apache-2.0); see the module docstring for the two ``impl`` choices.

    Args:
        dim (int): Channels C of the input tokens.
        num_heads (int): Number of attention heads; ``dim`` must be
            divisible by it. Defaults to 8.
        qkv_bias (bool): Bias of the ``qkv`` projection. Defaults to True.
        use_rel_pos (bool): Add decomposed relative positions. Defaults to
            False.
        rel_pos_zero_init (bool): Kept for signature parity; segment-anything
            always initialises ``rel_pos_*`` to zeros. Defaults to True.
        input_size (tuple[int, int], optional): Token grid (H, W) the
            relative positions are sized for (``2 * H - 1`` rows); required
            when ``use_rel_pos``.
        impl (str): ``'sdpa_folded'`` (default), ``'sdpa_mask'``,
            ``'flex'`` or ``'auto'`` (``'flex'`` on CUDA, ``'sdpa_folded'``
            elsewhere, per call).

    Raises:
        ValueError: On an unknown ``impl``, ``dim`` not divisible by
            ``num_heads``, or ``use_rel_pos`` without ``input_size``.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int = 8,
                 qkv_bias: bool = True,
                 use_rel_pos: bool = False,
                 rel_pos_zero_init: bool = True,
                 input_size: Optional[Tuple[int, int]] = None,
                 impl: str = 'sdpa_folded'):
        super().__init__()
        if dim % num_heads:
            raise ValueError(
                f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.impl = impl
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            _sam_get_rel_pos()  # resolve the import outside the forward
            if input_size is None:
                raise ValueError('input_size (H, W) is required when '
                                 'use_rel_pos=True')
            self.rel_pos_h = nn.Parameter(
                torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(
                torch.zeros(2 * input_size[1] - 1, head_dim))

    @property
    def impl(self) -> str:
        """str: One of ``'auto'``, ``'flex'``, ``'sdpa_folded'``,
        ``'sdpa_mask'``."""
        return self._impl

    @impl.setter
    def impl(self, value: str):
        if value not in _MODULE_IMPLS:
            raise ValueError(f'SAMSDPAAttention impl must be one of '
                             f'{_MODULE_IMPLS}, got {value!r}')
        self._impl = value

    def impl_for(self, x: Tensor) -> str:
        """The implementation a call on ``x`` runs (``'auto'`` resolved).

        Args:
            x (Tensor): The block's input tokens.

        Returns:
            str: ``'flex'``, ``'sdpa_folded'`` or ``'sdpa_mask'``.
        """
        if self.impl != 'auto':
            return self.impl
        return 'flex' if x.is_cuda else 'sdpa_folded'

    @classmethod
    def from_attention(cls,
                       attn: nn.Module,
                       impl: str = 'sdpa_folded') -> 'SAMSDPAAttention':
        """Wrap the parameters of a segment-anything ``Attention``.

        The new module holds the very same ``qkv``/``proj`` modules and
        ``rel_pos_*`` parameters (no copies), so optimizers and state dicts
        see the same tensors.

        Args:
            attn (nn.Module): A segment-anything ``image_encoder.Attention``
                (or a :class:`SAMSDPAAttention`).
            impl (str): See :class:`SAMSDPAAttention`.

        Returns:
            SAMSDPAAttention: Sharing ``attn``'s parameters.
        """
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.num_heads = attn.num_heads
        new.scale = attn.scale
        new.impl = impl
        new.qkv = attn.qkv
        new.proj = attn.proj
        new.use_rel_pos = attn.use_rel_pos
        if attn.use_rel_pos:
            _sam_get_rel_pos()  # resolve the import outside the forward
            new.rel_pos_h = attn.rel_pos_h
            new.rel_pos_w = attn.rel_pos_w
        new.train(attn.training)
        return new

    def _rel_terms(self, q: Tensor, hw: Tuple[int,
                                              int]) -> Tuple[Tensor, Tensor]:
        """Decomposed relative-position logits (``add_decomposed_rel_pos``).

        Args:
            q (Tensor): (B, heads, H*W, d) unscaled queries.
            hw (tuple[int, int]): Token grid (H, W).

        Returns:
            tuple[Tensor, Tensor]: ``rel_h`` (B, heads, H, W, H) over key
            rows and ``rel_w`` (B, heads, H, W, W) over key columns.
        """
        h, w = hw
        # in q's dtype: what autocast gives einsum's matmul anyway, spelt out
        # for the dispatch modes that see einsum decomposed (FlopCounterMode
        # under CPU autocast met a float32 rel_pos and a bf16 q there)
        rh = _get_rel_pos(h, h, self.rel_pos_h).to(q.dtype)  # (H, H, d)
        rw = _get_rel_pos(w, w, self.rel_pos_w).to(q.dtype)  # (W, W, d)
        r_q = q.unflatten(2, (h, w))  # (B, heads, H, W, d)
        rel_h = torch.einsum('bnhwc,hkc->bnhwk', r_q, rh)
        rel_w = torch.einsum('bnhwc,wkc->bnhwk', r_q, rw)
        return rel_h, rel_w

    def forward(self, x: Tensor) -> Tensor:
        """Attend over the tokens of each (window) grid.

        Args:
            x (Tensor): (B, H, W, C) tokens (B counts windows in window
                blocks).

        Returns:
            Tensor: (B, H, W, C).
        """
        b, h, w, _ = x.shape
        n = h * w
        # (3, B, heads, N, d), as in segment-anything
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads,
                                  -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        d = v.shape[-1]
        impl = self.impl_for(x)
        if not self.use_rel_pos:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        elif impl == 'flex':
            rel_h, rel_w = self._rel_terms(q, (h, w))
            attend = (
                _compiled_flex_rel_pos_attention()
                if x.is_cuda else flex_rel_pos_attention)
            out = attend(q, k, v,
                         rel_h.flatten(2, 3).to(q.dtype),
                         rel_w.flatten(2, 3).to(q.dtype), self.scale)
        elif impl == 'sdpa_mask':
            rel_h, rel_w = self._rel_terms(q, (h, w))
            bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(
                b, self.num_heads, n, n)
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, scale=self.scale)
        else:
            rel_h, rel_w = self._rel_terms(q, (h, w))
            idx = torch.arange(n, device=x.device)
            one_h = F.one_hot(idx // w, h).to(k.dtype)  # (N, H)
            one_w = F.one_hot(idx % w, w).to(k.dtype)  # (N, W)
            size = (b, self.num_heads, n)
            q = torch.cat([
                q * self.scale,
                rel_h.flatten(2, 3).to(q.dtype),
                rel_w.flatten(2, 3).to(q.dtype)
            ],
                          dim=-1)
            k = torch.cat(
                [k, one_h.expand(*size, h),
                 one_w.expand(*size, w)], dim=-1)
            # equal q/k/v head dims, a multiple of 8: fused kernels apply
            pad = -q.shape[-1] % 8
            if pad:
                q = F.pad(q, (0, pad))
                k = F.pad(k, (0, pad))
            v = F.pad(v, (0, q.shape[-1] - d))
            out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
            out = out[..., :d]
        # (B, heads, N, d) -> (B, H, W, heads * d), as in segment-anything
        out = out.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(out)

    def extra_repr(self) -> str:
        """str: Heads, relative positions and implementation."""
        return (f'num_heads={self.num_heads}, use_rel_pos={self.use_rel_pos}'
                f', impl={self.impl!r}')


def replace_sam_attention(image_encoder: nn.Module,
                          impl: str = 'sdpa_folded') -> int:
    """Swap the attention of every block of a SAM ``ImageEncoderViT``.

    Each ``block.attn`` (segment-anything ``Attention`` or
    :class:`SAMSDPAAttention`) is replaced in place by a module of the chosen
    implementation holding the same parameter objects, so the state-dict
    keys, the parameters (and any optimizer built on them) are unchanged and
    the encoder computes the same function.

    Args:
        image_encoder (nn.Module): A segment-anything ``ImageEncoderViT``
            (anything with ``blocks``, each with an ``attn``).
        impl (str): ``'auto'`` (global-attention blocks: ``'flex'`` on
            CUDA, ``'sdpa_folded'`` elsewhere, decided per call; windowed
            blocks: ``'sdpa_folded'``), ``'flex'`` (FlexAttention, no N x N
            tensor, no padded head dim), ``'sdpa_folded'`` (no N x N
            tensor), ``'sdpa_mask'`` (relative positions as an additive SDPA
            mask) or ``'original'`` (back to segment-anything's
            ``Attention``).

    Returns:
        int: Number of attention modules replaced.

    Raises:
        ValueError: On an unknown ``impl``.
        TypeError: If ``image_encoder`` has no ``blocks`` with ``attn``.
    """
    if impl not in SAM_ATTENTION_IMPLS:
        raise ValueError(f'Unknown SAM attention impl {impl!r}; choose from '
                         f'{SAM_ATTENTION_IMPLS}')
    blocks = getattr(image_encoder, 'blocks', None)
    if not blocks or not all(hasattr(blk, 'attn') for blk in blocks):
        raise TypeError(f'{type(image_encoder).__name__} has no `blocks` '
                        'with an `attn` each; expected segment-anything '
                        'ImageEncoderViT')
    modeling, _ = import_segment_anything()
    original_cls = modeling.image_encoder.Attention
    for blk in blocks:
        old = blk.attn
        block_impl = impl
        if impl == 'auto' and getattr(blk, 'window_size', 0) > 0:
            # 14 x 14 windows: the folded head dim is 64 + 28 (padded to
            # 96), and one compiled FlexAttention graph less per batch
            # shape and grad mode (dynamo recompiles per shape)
            block_impl = 'sdpa_folded'
        if not isinstance(old, (original_cls, SAMSDPAAttention)):
            raise TypeError(f'block.attn is a {type(old).__name__}, expected '
                            'segment-anything Attention or SAMSDPAAttention')
        if impl == 'original':
            new = original_cls.__new__(original_cls)
            nn.Module.__init__(new)
            new.num_heads = old.num_heads
            new.scale = old.scale
            new.qkv = old.qkv
            new.proj = old.proj
            new.use_rel_pos = old.use_rel_pos
            if old.use_rel_pos:
                new.rel_pos_h = old.rel_pos_h
                new.rel_pos_w = old.rel_pos_w
            new.train(old.training)
        else:
            new = SAMSDPAAttention.from_attention(old, block_impl)
        blk.attn = new
    return len(blocks)
