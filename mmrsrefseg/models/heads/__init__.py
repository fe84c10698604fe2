# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .base_sam_head import BaseSAMHead
from .sam2_prompt_head import SAM2_USED_MODULES, SAM2PromptHead
from .sam_prompt_head import SAM_PRESETS, SAMPromptHead

__all__ = [
    'BaseSAMHead', 'SAMPromptHead', 'SAM_PRESETS', 'SAM2PromptHead',
    'SAM2_USED_MODULES'
]
