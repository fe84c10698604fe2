# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .hooks import RefSegVisualizationHook

__all__ = ['RefSegVisualizationHook']
