# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Checkpoints of the RSRefSeg 2 authors' code -> mmrsrefseg ``RSRefSeg2``.

The released weights (Hugging Face ``KyanChen/RSRefSeg2``: ``rrsisd.pth``,
``refsegrs.pth``, ``risbench.pth``) are pickles of ``{'state_dict': ...}``
with every floating-point tensor in bfloat16, under the authors' module
names (KyanChen/RSRefSeg2, ``refseg/models/models.py``,
``RefSegEncoderDecoder``; LoRA by peft's ``get_peft_model``):

- ``clip_vision_encoder.base_model.model.model.*`` (HF SigLIP vision
  transformer) -> ``backbone.model.vision_model.*``;
- ``clip_text_encoder.base_model.model.model.*`` -> ``backbone.model.
  text_model.*``; ``clip_text_encoder.base_model.model.logit_{scale,bias}``
  -> ``backbone.model.logit_{scale,bias}``;
- ``backbone.model.image_encoder.base_model.model.*`` (Meta's SAM 2.1
  ``trunk`` / ``neck``) -> ``decode_head.image_encoder.*``;
  ``backbone.model.{sam_prompt_encoder,sam_mask_decoder,no_mem_embed}`` ->
  ``decode_head.{...}`` (Meta's names are kept by ``SAM2PromptHead``);
- ``prompter.*`` -> ``neck.*`` by :data:`PROMPTER_LAYERS` and
  :data:`PROMPTER_PARAMS` (``CascadedPrompter``'s docstring gives the same
  table);
- ``decode_head.logit_scale2`` (the InfoNCE temperature) ->
  ``contrastive_loss.logit_scale``. ``decode_head.logit_bias2`` is dropped:
  it is added to every InfoNCE logit and cancels in the softmax (it changes
  neither the loss nor any gradient); ``decode_head.logit_{scale,bias}1``
  belong to a loss their configs switch off.

peft's ``base_layer`` / ``lora_A.default`` / ``lora_B.default`` parts are
kept (mmrsrefseg injects LoRA with peft too, with the authors' targets).
"""
import re
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .checkpoint import format_keys

__all__ = [
    'PROMPTER_LAYERS', 'PROMPTER_PARAMS', 'convert_authors_rsrefseg2',
    'DROPPED_KEYS'
]

#: ``CascadedPrompter`` block -> (the authors' block, {our layer: (their
#: attention, norm after it[, MLP, norm after the MLP])}).
PROMPTER_LAYERS = {
    'two_query_layers': ('two_queries_text_attn_layers', {
        'q1_self_attn': ('self_attn_query_query1', 'norm_query1_1'),
        'q2_self_attn': ('self_attn_query_query2', 'norm_query2_1'),
        'q1_text_attn': ('cross_attn_query_text_query1_text', 'norm_query1_2',
                         'mlp_query1_2', 'norm_query1_3'),
        'q2_text_attn': ('cross_attn_query_text_query2_text', 'norm_query2_2',
                         'mlp_query2_2', 'norm_query2_3'),
        'q1_q2_attn': ('cross_attn_query_query_query1_query2', 'norm_query1_4',
                       'mlp_query1_3', 'norm_query1_5'),
        'q2_q1_attn': ('cross_attn_query_query_query2_query1', 'norm_query2_4',
                       'mlp_query2_3', 'norm_query2_5'),
    }),
    'step1_layers': ('queries1_to_img_attn_layers', {
        'query_self_attn': ('self_attn_text_text_1', 'norm_text_1'),
        'image_query_attn':
        ('cross_attn_img_text_1', 'norm_img_1', 'mlp_img_1', 'norm_img_2'),
    }),
    'step2_layers': ('prompt_queries2_img_attn_layers', {
        'query_self_attn': ('self_attn_text_1', 'norm_text_1'),
        'image_query_attn':
        ('cross_attn_img_text_1', 'norm_img_1', 'mlp_img_1', 'norm_img_2'),
        'prompt_self_attn': ('self_attn_prompt_1', 'norm_prompt_1'),
        'prompt_query_attn': ('cross_attn_prompt_text_1', 'norm_prompt_2',
                              'mlp_prompt_2', 'norm_prompt_3'),
        'prompt_image_attn': ('cross_attn_prompt_img_1', 'norm_prompt_4',
                              'mlp_prompt_3', 'norm_prompt_5'),
    }),
}
#: Our prompter parameter / module prefix -> the authors'.
PROMPTER_PARAMS = {
    'query_pos_embed1': 'text_query_pe_embedding1',
    'query_pos_embed2': 'text_query_pe_embedding2',
    'image_pos_embed': 'img_pe',
    'prompt_embed': 'prompt_embedding',
    'prompt_pos_embed': 'prompt_pe_embedding',
    'sparse_mlp.layers.0.0': 'sparse_prompt_mlp.layers.0',
    'sparse_mlp.layers.1': 'sparse_prompt_mlp.layers.1',
    'dense_conv': 'dense_prompt_conv',
}
# Within one PostNormAttentionLayer: our sub-prefix -> (index into the
# authors' names, their sub-prefix).
_LAYER_PARTS = (('ffn.layers.0.0.', 2, 'layers.0.'), ('ffn.layers.1.', 2,
                                                      'layers.1.'),
                ('ffn_norm.', 3, ''), ('norm.', 1, ''), ('', 0, ''))
_PREFIXES = (
    ('clip_vision_encoder.base_model.model.model.',
     'backbone.model.vision_model.'),
    ('clip_text_encoder.base_model.model.model.',
     'backbone.model.text_model.'),
    ('clip_text_encoder.base_model.model.logit_', 'backbone.model.logit_'),
    ('backbone.model.image_encoder.base_model.model.',
     'decode_head.image_encoder.'),
    ('backbone.model.sam_prompt_encoder.', 'decode_head.sam_prompt_encoder.'),
    ('backbone.model.sam_mask_decoder.', 'decode_head.sam_mask_decoder.'),
    ('backbone.model.no_mem_embed', 'decode_head.no_mem_embed'),
    ('decode_head.logit_scale2', 'contrastive_loss.logit_scale'),
)
#: Authors' keys without a counterpart (see the module docstring).
DROPPED_KEYS = ('decode_head.logit_bias2', 'decode_head.logit_scale1',
                'decode_head.logit_bias1')


def _prompter_rules() -> List[Tuple[re.Pattern, str]]:
    """(pattern over the authors' prompter keys, our key template)."""
    rules = []
    for block, (their_block, layers) in PROMPTER_LAYERS.items():
        for layer, names in layers.items():
            for ours, i, theirs in _LAYER_PARTS:
                if i < len(names):
                    pattern = (rf'^{their_block}\.(\d+)\.{names[i]}\.'
                               rf'{re.escape(theirs)}(.+)$')
                    rules.append(
                        (re.compile(pattern), rf'{block}.\1.{layer}.{ours}\2'))
    for ours, theirs in PROMPTER_PARAMS.items():
        rules.append(
            (re.compile(rf'^{re.escape(theirs)}(\..+)?$'), ours + r'\1'))
    return rules


_PROMPTER_RULES = _prompter_rules()


def _prompter_key(key: str) -> Optional[str]:
    """``prompter.<authors' name>`` -> ``neck.<ours>`` (None: unknown)."""
    rest = key[len('prompter.'):]
    for pattern, template in _PROMPTER_RULES:
        m = pattern.match(rest)
        if m:  # an unmatched optional group expands to ''
            return 'neck.' + m.expand(template)
    return None


def convert_authors_rsrefseg2(
        state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], List[str]]:
    """Rename the authors' RSRefSeg 2 state dict to ``RSRefSeg2`` keys.

    Args:
        state (dict[str, Tensor]): The authors' state dict (the released
            ``state_dict``); bfloat16 tensors are widened to float32.

    Returns:
        tuple[dict[str, Tensor], list[str]]: mmrsrefseg keys -> tensors, and
        the authors' keys dropped on purpose (:data:`DROPPED_KEYS`).

    Raises:
        KeyError: If keys remain that no rule maps (named, with the count).
    """
    out, dropped, unknown = {}, [], []
    for key, value in state.items():
        if value.is_floating_point():
            value = value.to(torch.float32)
        if key in DROPPED_KEYS:
            dropped.append(key)
            continue
        if key.startswith('prompter.'):
            new = _prompter_key(key)
        else:
            new = next((dst + key[len(src):]
                        for src, dst in _PREFIXES if key.startswith(src)),
                       None)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise KeyError('The checkpoint holds keys that are not the RSRefSeg 2 '
                       f"authors' ({format_keys(unknown)})")
    return out, dropped
