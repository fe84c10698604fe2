# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .refseg_visualization_hook import RefSegVisualizationHook

__all__ = ['RefSegVisualizationHook']
