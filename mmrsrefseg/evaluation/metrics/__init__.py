# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .refseg_iou_metric import RefSegIoUMetric

__all__ = ['RefSegIoUMetric']
