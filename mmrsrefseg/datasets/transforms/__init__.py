# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .loading import LoadRefSegAnnotations

__all__ = ['LoadRefSegAnnotations']
