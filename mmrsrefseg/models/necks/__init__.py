# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .cascaded_prompter import CascadedPrompter
from .text_filter_neck import TextFilterNeck, global_activation_logits

__all__ = ['CascadedPrompter', 'TextFilterNeck', 'global_activation_logits']
