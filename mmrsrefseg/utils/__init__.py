# Copyright (c) mmrsrefseg contributors. All rights reserved.
from . import compat  # noqa: F401  (registers torch.load safe globals)
from .compat import register_mmengine_safe_globals

__all__ = ['register_mmengine_safe_globals']
