# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .masked_average_pool import masked_average_pool
from .post_norm_attention_layer import PostNormAttentionLayer
from .sam_batched_decoder import batched_mask_decoder_forward
from .sam_sdpa_attention import (SAM_ATTENTION_IMPLS, SAMSDPAAttention,
                                 replace_sam_attention)

__all__ = [
    'SAMSDPAAttention', 'replace_sam_attention', 'SAM_ATTENTION_IMPLS',
    'batched_mask_decoder_forward', 'PostNormAttentionLayer',
    'masked_average_pool'
]
