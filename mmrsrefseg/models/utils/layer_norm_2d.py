# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM's ``LayerNorm2d`` as an mmcv norm layer (``dict(type='LN2d')``).

A channel-wise LayerNorm of a (B, C, H, W) map, so that a sample's output
never depends on the other samples of its batch (unlike BN). mmcv's
``build_norm_layer`` (hence ``ConvModule``'s ``norm_cfg``) finds it in
mmseg's ``MODELS`` registry; its layer name in a ``ConvModule`` is ``ln``.
Note that ``build_norm_layer`` passes ``eps=1e-5`` unless the config sets
it (SAM itself uses ``eps=1e-6``).
"""
from mmseg.registry import MODELS

from mmrsrefseg.utils.sam_import import import_segment_anything

__all__ = ['LayerNorm2d']

LayerNorm2d = import_segment_anything()[0].common.LayerNorm2d
MODELS.register_module('LN2d', module=LayerNorm2d)
