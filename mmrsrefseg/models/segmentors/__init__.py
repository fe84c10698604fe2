# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .rsrefseg import DEFAULT_LORA_TARGETS, LORA_TARGET_SETS, RSRefSeg

__all__ = ['RSRefSeg', 'DEFAULT_LORA_TARGETS', 'LORA_TARGET_SETS']
