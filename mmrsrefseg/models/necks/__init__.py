# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .text_filter_neck import TextFilterNeck, global_activation_logits

__all__ = ['TextFilterNeck', 'global_activation_logits']
