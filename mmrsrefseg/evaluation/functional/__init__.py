# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .refseg_scores import (SIZE_NAMES, check_size_thresholds, refseg_scores,
                            sample_ious, size_bounds, size_label)

__all__ = [
    'SIZE_NAMES', 'check_size_thresholds', 'refseg_scores', 'sample_ious',
    'size_bounds', 'size_label'
]
