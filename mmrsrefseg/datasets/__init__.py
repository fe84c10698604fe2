# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .refseg_jsonl_dataset import RefSegJsonlDataset
from .refsegrs_dataset import RefSegRSDataset
from .risbench_dataset import RISBenchDataset
from .rrsisd_dataset import RRSISDDataset
from .transforms import LoadRefSegAnnotations, PackRefSegInputs

__all__ = [
    'RRSISDDataset', 'RefSegJsonlDataset', 'RefSegRSDataset',
    'RISBenchDataset', 'LoadRefSegAnnotations', 'PackRefSegInputs'
]
