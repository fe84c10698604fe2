# Copyright (c) mmrsrefseg contributors. All rights reserved.
from .base_refseg_dataset import BaseRefSegDataset
from .refseg_jsonl_dataset import RefSegJsonlDataset
from .refsegrs_dataset import RefSegRSDataset
from .risbench_dataset import RISBenchDataset
from .rrsisd_dataset import RRSISDDataset
from .transforms import LoadRefSegAnnotations

__all__ = [
    'BaseRefSegDataset', 'RRSISDDataset', 'RefSegJsonlDataset',
    'RefSegRSDataset', 'RISBenchDataset', 'LoadRefSegAnnotations'
]
