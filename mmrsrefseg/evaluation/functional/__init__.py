# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .pixel_counts import PixelCounts, as_2d_array, count_pixels
from .refseg_report import (category_rows, log_breakdown, log_summary,
                            sample_entries, scores_of, size_rows, write_report)
from .refseg_scores import (SIZE_NAMES, check_size_thresholds, refseg_scores,
                            sample_ious, size_bounds, size_label)

__all__ = [
    'PixelCounts', 'as_2d_array', 'count_pixels', 'SIZE_NAMES',
    'check_size_thresholds', 'refseg_scores', 'sample_ious', 'size_bounds',
    'size_label', 'scores_of', 'category_rows', 'size_rows', 'log_summary',
    'log_breakdown', 'sample_entries', 'write_report'
]
