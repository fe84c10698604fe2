# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .base_refsegmentor import BaseRefSegmentor
from .rsrefseg import RSRefSeg
from .rsrefseg2 import RSRefSeg2

__all__ = ['BaseRefSegmentor', 'RSRefSeg', 'RSRefSeg2']
