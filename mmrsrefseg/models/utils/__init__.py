# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .finetune import apply_finetune_cfg
from .layer_norm_2d import LayerNorm2d
from .masked_average_pool import masked_average_pool
from .post_norm_attention_layer import PostNormAttentionLayer
from .sam_batched_decoder import batched_mask_decoder_forward
from .sam_sdpa_attention import (SAM_ATTENTION_IMPLS, SAMSDPAAttention,
                                 replace_sam_attention)
from .trained_checkpoint import (TRAINED_ONLY_KEY, frozen_pretrained_keys,
                                 is_trained_only, make_trained_only,
                                 model_key_shapes, model_state_from_checkpoint)

__all__ = [
    'SAMSDPAAttention', 'replace_sam_attention', 'SAM_ATTENTION_IMPLS',
    'batched_mask_decoder_forward', 'apply_finetune_cfg', 'LayerNorm2d',
    'TRAINED_ONLY_KEY', 'frozen_pretrained_keys', 'is_trained_only',
    'make_trained_only', 'model_state_from_checkpoint', 'model_key_shapes',
    'PostNormAttentionLayer', 'masked_average_pool'
]
