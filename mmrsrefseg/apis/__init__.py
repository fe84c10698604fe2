# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .inference_inputs import read_image_file
from .refseg_inferencer import RefSegInferencer

__all__ = ['RefSegInferencer', 'read_image_file']
