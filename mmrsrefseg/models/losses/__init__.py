# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .info_nce_loss import InfoNCELoss, gather_with_local_grad
from .query_decorrelation_loss import QueryDecorrelationLoss

__all__ = ['InfoNCELoss', 'QueryDecorrelationLoss', 'gather_with_local_grad']
