# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Readers and checks shared by the referring segmentation datasets."""
from .annotation_files import load_json_file, load_pickle_file, read_text_lines
from .fields import (available_splits, is_int, is_number, join_img_path,
                     require, to_int_id)
from .image_files import read_image_size, read_mask_file, resize_mask
from .rrsisd_annotations import join_rrsisd_ref, load_rrsisd_index
from .segmentation import check_segmentation, decode_segmentation

__all__ = [
    'available_splits', 'check_segmentation', 'decode_segmentation', 'is_int',
    'is_number', 'join_img_path', 'join_rrsisd_ref', 'load_json_file',
    'load_pickle_file', 'load_rrsisd_index', 'read_image_size',
    'read_mask_file', 'read_text_lines', 'require', 'resize_mask', 'to_int_id'
]
