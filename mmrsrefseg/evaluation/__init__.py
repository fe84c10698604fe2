# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .metrics import RefSegIoUMetric

__all__ = ['RefSegIoUMetric']
