# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .activation_recorder import (ACTIVATION_FIELDS, ACTIVATION_TITLES,
                                  ActivationRecorder, activation_maps_of,
                                  activation_to_image)
from .refseg_local_visualizer import RefSegLocalVisualizer

__all__ = [
    'RefSegLocalVisualizer', 'ActivationRecorder', 'activation_to_image',
    'activation_maps_of', 'ACTIVATION_FIELDS', 'ACTIVATION_TITLES'
]
