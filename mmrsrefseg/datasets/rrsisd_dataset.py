# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RRSIS-D in its native ``refs(unc).p`` + ``instances.json`` layout."""
import os.path as osp
from typing import Any, List, Optional

import mmengine
from mmseg.registry import DATASETS

from .base_refseg_dataset import BaseRefSegDataset
from .utils import (available_splits, join_img_path, join_rrsisd_ref,
                    load_rrsisd_index, require, to_int_id)

#: The 20 RRSIS-D categories (inherited from DIOR), indexed by their
#: ``category_id`` 0..19 as listed in RRSIS-D's ``instances.json``.
RRSISD_CLASSES = ('Expressway-Service-area', 'Expressway-toll-station',
                  'airplane', 'airport', 'baseballfield', 'basketballcourt',
                  'bridge', 'chimney', 'dam', 'golffield', 'groundtrackfield',
                  'harbor', 'overpass', 'ship', 'stadium', 'storagetank',
                  'tenniscourt', 'trainstation', 'vehicle', 'windmill')

#: One RGB colour (0-255) per RRSIS-D category, in ``RRSISD_CLASSES`` order.
# yapf: disable
RRSISD_PALETTE = [
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
    [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
    [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
    [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195],
    [128, 128, 0], [255, 215, 180], [0, 0, 128], [128, 128, 128],
]
# yapf: enable


@DATASETS.register_module()
class RRSISDDataset(BaseRefSegDataset):
    """RRSIS-D referring remote sensing image segmentation dataset.

    RRSIS-D (Liu et al., "Rotated Multi-Scale Interaction Network for
    Referring Remote Sensing Image Segmentation", CVPR 2024) holds 17,402
    image-expression-mask triplets (train 12,181 / val 1,740 / test 3,481)
    on 800x800 DIOR images, 20 categories. Native layout::

        data_root/
        ├── rrsisd/refs(unc).p        # pickle: list of refs
        ├── rrsisd/instances.json     # images, annotations, categories
        └── images/rrsisd/JPEGImages/NNNNN.jpg

    A ref is ``{'image_id', 'split', 'sentences': [{'tokens', 'raw',
    'sent_id', 'sent'}], 'file_name', 'category_id', 'ann_id', 'sent_ids',
    'ref_id'}``; the referring expression is ``sent`` (some redistributions
    replaced ``raw`` / ``tokens`` by the class name). An annotation is
    ``{'id', 'image_id', 'categories_id', 'bbox': [x1, y1, x2, y2],
    'segmentation': [{'size': [h, w], 'counts': str}], 'area'}`` (a list
    holding one COCO compressed RLE; mmdet's ``LoadAnnotations`` would take it
    for polygons, so masks are decoded by :class:`LoadRefSegAnnotations`).
    Ids stored as strings are normalised to int. The image file name comes
    from the image record of ``instances.json``, ``ori_height`` /
    ``ori_width`` from its ``height`` / ``width``. ``bbox`` is passed on as
    stored: it is the DIOR-RSVG box, not the extent of the SAM-made mask
    (real test ref 11765: bbox [148, 603, 375, 788], mask extent x 144..367,
    y 600..783).

    The metainfo names the 20 DIOR categories of RRSIS-D (``classes``,
    indexed by ``category_id``) with a ``palette``; every ref's
    ``category_id`` must index them and the category's name in
    ``instances.json`` must be that class.

    One data sample per referring expression (``text_mode='original'``),
    in the order of the refs file. Each ref is validated once when the
    dataset is built, see :class:`BaseRefSegDataset` for the checks, the
    ``skip_invalid`` counting and the size-quirk policy (RLE 800x800 on a few
    800x787 / 800x801 / 800x802 images: kept and resized with nearest
    neighbour when the sizes differ by at most ``size_tolerance`` px per
    dimension, an error beyond). A refs file that is empty, truncated, not a
    pickle or not a list of dicts, and an ``instances.json`` that is empty,
    truncated, not JSON or not of the structure above are errors naming the
    file (and the entry), whatever ``skip_invalid``.

    Modified from ``mmdet/datasets/refcoco.py`` (``RefCocoDataset``,
    Apache-2.0): same join of refs and instances and the same ``text_mode``
    choices, but one sample per expression instead of one per image, ids
    normalised, ``sent`` instead of lower-cased ``raw``, and validation.

    Args:
        data_root (str): Dataset root, see the layout above.
        ann_file (str): Refs pickle, relative to ``data_root``. Defaults to
            ``'rrsisd/refs(unc).p'``.
        instances_file (str): ``instances.json``, relative to ``data_root``.
            Defaults to ``'rrsisd/instances.json'``.
        data_prefix (dict): ``img_path``: image folder relative to
            ``data_root``. Defaults to
            ``dict(img_path='images/rrsisd/JPEGImages')``.
        split (str): Any split present in the refs file (RRSIS-D: ``'train'``,
            ``'val'``, ``'test'``). Defaults to ``'train'``.
        text_mode (str): ``'original'``, ``'select_first'``, ``'random'`` or
            ``'concat'``, see :class:`BaseRefSegDataset`. Defaults to
            ``'original'``.
        skip_invalid (bool): Drop (count, log) invalid refs instead of
            raising. Defaults to False.
        size_tolerance (int): Tolerated RLE/image size difference in pixels
            per dimension. Defaults to 16.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ``metainfo``, ...).

    Raises:
        ValueError: For an unknown split (the message lists the available
            ones), a malformed refs or instances file, an invalid ref (the
            message names the file and ref id) or an empty split.
        FileNotFoundError: For a missing annotation or image file.
    """

    METAINFO = dict(classes=RRSISD_CLASSES, palette=RRSISD_PALETTE)

    def __init__(self,
                 data_root: str,
                 ann_file: str = 'rrsisd/refs(unc).p',
                 instances_file: str = 'rrsisd/instances.json',
                 data_prefix: dict = dict(img_path='images/rrsisd/JPEGImages'),
                 split: str = 'train',
                 text_mode: str = 'original',
                 skip_invalid: bool = False,
                 size_tolerance: int = 16,
                 **kwargs) -> None:
        self.instances_file = instances_file
        self.split = split
        self._index: Optional[dict] = None
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            text_mode=text_mode,
            skip_invalid=skip_invalid,
            size_tolerance=size_tolerance,
            **kwargs)

    def _join_prefix(self) -> None:
        """Join ``data_root`` to ``instances_file`` as well."""
        if self.instances_file and not mmengine.is_abs(self.instances_file):
            self.instances_file = osp.join(self.data_root, self.instances_file)
        super()._join_prefix()

    def load_data_list(self) -> List[dict]:
        """Load, validate and expand the refs of the split.

        The joined refs / instances index is dropped afterwards so that it is
        neither kept in memory nor copied into dataloader workers.

        Returns:
            list[dict]: See :meth:`BaseRefSegDataset.load_data_list`.
        """
        try:
            return super().load_data_list()
        finally:
            self._index = None

    def load_records(self) -> List[Any]:
        """Load and index the refs and instances, keep the split's refs.

        Returns:
            list[tuple[int, dict]]: ``(position in the refs file, ref)``.

        Raises:
            ValueError: If the files are malformed or the split is unknown.
        """
        self._index = load_rrsisd_index(self.ann_file, self.instances_file)
        refs = self._index['refs']
        splits = [ref.get('split') for ref in refs]
        if self.split not in splits:
            raise ValueError(f'{self.ann_file}: unknown split '
                             f'{self.split!r}; available splits: '
                             f'{available_splits(splits)}')
        return [(i, ref) for i, (ref, split) in enumerate(zip(refs, splits))
                if split == self.split]

    def parse_record(self, record: Any) -> dict:
        """Join one ref with ``instances.json``.

        Args:
            record (tuple[int, dict]): ``(position, ref)``.

        Returns:
            dict: Ref info, see :meth:`BaseRefSegDataset.parse_record`.

        Raises:
            ValueError: For a missing / malformed field or an unknown
                ``ann_id`` / ``image_id``.
        """
        position, ref = record
        joined = join_rrsisd_ref(ref, position, self._index)
        where = joined['where']
        ann, img = joined['ann'], joined['img']
        img_where = (f'{where}: image {joined["image_id"]} in '
                     f'{self.instances_file}')
        ann_where = (f'{where}: annotation {joined["ann_id"]} in '
                     f'{self.instances_file}')
        return dict(
            where=where,
            img_path=join_img_path(self.data_prefix['img_path'],
                                   joined['file_name'], img_where),
            texts=joined['texts'],
            sent_ids=joined['sent_ids'],
            ref_id=joined['ref_id'],
            ann_id=joined['ann_id'],
            image_id=joined['image_id'],
            category_id=joined['category_id'],
            category_name=self._index['cats'].get(joined['category_id']),
            segmentation=require(ann, 'segmentation', ann_where),
            bbox=require(ann, 'bbox', ann_where),
            ori_height=to_int_id(
                require(img, 'height', img_where), 'height', img_where),
            ori_width=to_int_id(
                require(img, 'width', img_where), 'width', img_where))
