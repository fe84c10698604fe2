# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .clip_backbone import CLIPBackbone

__all__ = ['CLIPBackbone']
