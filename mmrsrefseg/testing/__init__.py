# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Reference implementations used by the parity tests and benchmarks."""
from .authors_rsrefseg import (AuthorsRSRefSeg, build_authors_from_config,
                               randomise_weights, tiny_siglip_rsrefseg_cfg)

__all__ = [
    'AuthorsRSRefSeg', 'build_authors_from_config', 'randomise_weights',
    'tiny_siglip_rsrefseg_cfg'
]
