# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .sam_prompt_head import SAM_PRESETS, SAMPromptHead

__all__ = ['SAMPromptHead', 'SAM_PRESETS']
