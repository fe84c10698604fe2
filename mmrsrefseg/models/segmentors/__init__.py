# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .rsrefseg import DEFAULT_LORA_TARGETS, RSRefSeg

__all__ = ['RSRefSeg', 'DEFAULT_LORA_TARGETS']
