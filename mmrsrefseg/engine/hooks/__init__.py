# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .refseg_checkpoint_hook import RefSegCheckpointHook, add_checkpoint_hook
from .refseg_visualization_hook import RefSegVisualizationHook

__all__ = [
    'RefSegCheckpointHook', 'RefSegVisualizationHook', 'add_checkpoint_hook'
]
