# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .base_refsegmentor import BaseRefSegmentor
from .rsrefseg import RSRefSeg

__all__ = ['BaseRefSegmentor', 'RSRefSeg']
