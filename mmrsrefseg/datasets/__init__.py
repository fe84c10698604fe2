# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .refseg_jsonl_dataset import RefSegJsonlDataset
from .rrsisd_dataset import RRSISDDataset
from .transforms import LoadRefSegAnnotations, PackRefSegInputs

__all__ = [
    'RRSISDDataset', 'RefSegJsonlDataset', 'LoadRefSegAnnotations',
    'PackRefSegInputs'
]
