# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .refseg_local_visualizer import RefSegLocalVisualizer

__all__ = ['RefSegLocalVisualizer']
