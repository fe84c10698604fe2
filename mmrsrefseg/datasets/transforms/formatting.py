# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Packing of referring segmentation samples."""
from typing import Sequence

from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

#: mmseg's ``PackSegInputs`` meta keys followed by the referring keys.
REFSEG_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                    'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                    'reduce_zero_label', 'text', 'ref_id', 'ann_id',
                    'image_id', 'sent_id', 'category_id')


@TRANSFORMS.register_module()
class PackRefSegInputs(PackSegInputs):
    """Pack a referring segmentation sample into ``inputs`` + data sample.

    Same as mmseg's :class:`PackSegInputs` (``inputs``: uint8 image tensor of
    shape (3, H, W); ``data_samples.gt_sem_seg.data``: int64 mask of shape
    (1, H, W) in {0, 1}) with the referring expression and its ids added to
    the default meta keys, so ``data_samples.metainfo['text']`` is the
    referring expression (str) and ``ref_id``, ``ann_id``, ``image_id``,
    ``sent_id``, ``category_id`` (int) travel with it. Keys absent from the
    results are left out, as in mmseg.

    Args:
        meta_keys (Sequence[str]): Keys copied into the data sample's
            metainfo. Defaults to ``REFSEG_META_KEYS`` (mmseg's defaults +
            ``text``, ``ref_id``, ``ann_id``, ``image_id``, ``sent_id``,
            ``category_id``).
    """

    def __init__(self, meta_keys: Sequence[str] = REFSEG_META_KEYS) -> None:
        super().__init__(meta_keys=meta_keys)
