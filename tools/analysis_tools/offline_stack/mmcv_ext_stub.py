# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Stand-in for ``mmcv._ext`` in measurements on an offline machine.

Not product code: ``setup_stack.sh`` copies it into mmcv 2.1.0's
pure-Python tree as ``mmcv/_ext.py``, because mmseg and mmdet import
``mmcv.ops`` when they are imported while RSRefSeg calls no mmcv op. Any op
actually called raises.
"""


def __getattr__(name):

    def _missing(*args, **kwargs):
        raise RuntimeError(f'mmcv op {name} is not compiled (offline '
                           'measurement stack, mmcv_ext_stub.py)')

    return _missing
