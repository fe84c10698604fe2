# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .text_filter_neck import TextFilterNeck

__all__ = ['TextFilterNeck']
