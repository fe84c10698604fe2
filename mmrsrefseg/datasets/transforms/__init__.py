# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .formatting import PackRefSegInputs
from .loading import LoadRefSegAnnotations

__all__ = ['LoadRefSegAnnotations', 'PackRefSegInputs']
