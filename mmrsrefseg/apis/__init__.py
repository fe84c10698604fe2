# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .refseg_inferencer import RefSegInferencer

__all__ = ['RefSegInferencer']
