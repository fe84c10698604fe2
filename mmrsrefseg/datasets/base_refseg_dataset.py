# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The common base class of the referring segmentation datasets."""
import logging
import random
from typing import Any, Dict, List, Tuple

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from .utils import check_segmentation, is_number, read_image_size

#: How a ref with several referring expressions becomes data samples.
TEXT_MODES = ('original', 'select_first', 'random', 'concat')


class BaseRefSegDataset(BaseDataset):
    """Common base of the referring segmentation datasets (not registered).

    Subclasses implement :meth:`load_records` (read the annotation file(s),
    apply the split, raise on file-level problems) and :meth:`parse_record`
    (turn one ref into a ref info dict, raise ``ValueError`` on a bad ref),
    and set ``METAINFO`` to their own class names (``classes``, indexed by
    ``category_id``) and ``palette``. :meth:`load_data_list` validates every
    ref once at build time and expands it into data samples according to
    ``text_mode``; the transforms then load what was validated.

    The mask of a ref comes either from an annotation (``segmentation``, an
    RLE or polygons, with a ``bbox``: RRSIS-D, JSONL) or from a mask image
    file (``seg_map_path``: RefSegRS, RISBench).

    Validation (no image is decoded; RLE strings are decoded once by
    pycocotools, about 1 ms each at 800x800):

    - the image file exists and PIL can read its size from the header
      (``FileNotFoundError`` / ``ValueError`` for an empty, non-image or
      garbage file);
    - every referring expression is a non-empty str (``ValueError``);
    - annotation masks: the segmentation decodes to exactly its size (see
      :func:`~mmrsrefseg.datasets.utils.check_segmentation`; ``ValueError``)
      and ``bbox`` is four numbers (``ValueError``);
    - mask files: the file exists and PIL can read its size from the header
      (``FileNotFoundError`` / ``ValueError``);
    - ``category_id`` is None or indexes the ``classes`` of the metainfo
      (when the metainfo has ``classes``), and a ``category_name`` given
      with it is that class (``ValueError``);
    - the mask size ``(h, w)`` (RLE size or mask file size) equals the image
      size. Size-quirk policy: a few RRSIS-D images are 800x787, 800x801 or
      800x802 while their RLE is 800x800. If the two differ by at most
      ``size_tolerance`` pixels in each dimension, the ref is kept, counted in
      ``num_size_mismatch``, logged as a warning and its samples are marked
      ``resize_mask=True``, on which :class:`LoadRefSegAnnotations` resizes
      the decoded mask with nearest neighbour to the image size. A larger
      difference is a ``ValueError``. This is the only place where the
      tolerance is decided.

    Every error names the annotation file, the ref id and, where relevant,
    the image file. With ``skip_invalid=True`` invalid refs are dropped
    instead, each logged as a warning, counted in ``num_invalid`` and
    summarised at the end. File-level problems (an unreadable annotation
    file, an unknown split) are errors either way.

    Args:
        ann_file (str): Annotation file, relative to ``data_root``.
        data_root (str): Dataset root. Defaults to ''.
        data_prefix (dict): ``img_path``: image folder relative to
            ``data_root``. Defaults to ``dict(img_path='')``.
        text_mode (str): ``'original'``: one sample per referring
            expression; ``'select_first'``: one sample per ref with its first
            expression; ``'random'``: one sample per ref whose expression is
            drawn anew (Python ``random``) every time the sample is fetched;
            ``'concat'``: one sample per ref with its expressions joined by a
            space (``sent_id`` = the first one's). Defaults to 'original'.
        skip_invalid (bool): Drop invalid refs instead of raising. Defaults
            to False.
        size_tolerance (int): Largest tolerated difference in pixels per
            dimension between the mask size (RLE or mask file) and the image
            size. Defaults to 16.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``metainfo`` replaces the class names).

    Raises:
        ValueError: For an unknown ``text_mode`` or a negative
            ``size_tolerance``; when building, for an invalid ref (without
            ``skip_invalid``) or an empty split.
        FileNotFoundError: When building, for a missing image (without
            ``skip_invalid``).
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 text_mode: str = 'original',
                 skip_invalid: bool = False,
                 size_tolerance: int = 16,
                 **kwargs) -> None:
        if text_mode not in TEXT_MODES:
            raise ValueError(f'text_mode must be one of {TEXT_MODES}, got '
                             f'{text_mode!r}')
        if not isinstance(size_tolerance, int) or size_tolerance < 0:
            raise ValueError('size_tolerance must be a non-negative int, got '
                             f'{size_tolerance!r}')
        self.text_mode = text_mode
        self.skip_invalid = skip_invalid
        self.size_tolerance = size_tolerance
        self.num_invalid = 0
        self.num_size_mismatch = 0
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def load_records(self) -> List[Any]:
        """Read the annotation file(s) and return the refs of the split."""
        raise NotImplementedError

    def parse_record(self, record: Any) -> dict:
        """Turn one record of :meth:`load_records` into a ref info dict.

        Returns:
            dict: ``where`` (error context), ``img_path``, ``texts``,
            ``sent_ids``, int ``ref_id``, ``ann_id``, ``image_id``,
            ``category_id`` (None when unknown), optional ``category_name``
            (checked against the metainfo, not kept), either
            ``segmentation`` and ``bbox`` or ``seg_map_path`` (mask file),
            ``ori_height`` and ``ori_width`` (None: taken from the image
            header).
        """
        raise NotImplementedError

    def split_description(self) -> str:
        """Which refs were loaded, for log and error messages."""
        return f'{self.ann_file} (split {getattr(self, "split", None)!r})'

    def load_data_list(self) -> List[dict]:
        """Load, validate and expand the refs into data samples.

        Returns:
            list[dict]: One dict per data sample with ``img_path``, ``text``
            (str), int ``ref_id``, ``ann_id``, ``image_id``, ``sent_id``,
            ``category_id`` (int, or None when the dataset has no
            categories), either ``segmentation`` (as stored) and ``bbox``
            ([x1, y1, x2, y2] as stored) or ``seg_map_path`` (mask file),
            ``ori_height``, ``ori_width``, ``seg_fields`` (``[]``) and
            ``reduce_zero_label`` (False); ``resize_mask`` (True) when the
            mask size differs from the image size within
            ``size_tolerance``; in ``'random'`` text mode also ``texts`` and
            ``sent_ids``.

        Raises:
            ValueError: See the class docstring.
            FileNotFoundError: See the class docstring.
        """
        self.num_invalid = 0
        self.num_size_mismatch = 0
        image_sizes: Dict[str, Tuple[int, int]] = {}
        data_list = []
        for record in self.load_records():
            try:
                info = self.parse_record(record)
                self._check_ref(info, image_sizes)
            except (ValueError, FileNotFoundError) as err:
                if not self.skip_invalid:
                    raise
                self.num_invalid += 1
                print_log(
                    f'skip_invalid: dropped an invalid ref: {err}',
                    logger='current',
                    level=logging.WARNING)
                continue
            data_list.extend(self._expand(info))
        if self.num_invalid:
            print_log(
                f'{self.split_description()}: skipped {self.num_invalid} '
                f'invalid refs, kept {len(data_list)} samples',
                logger='current',
                level=logging.WARNING)
        if self.num_size_mismatch:
            print_log(
                f'{self.split_description()}: {self.num_size_mismatch} refs '
                'have a mask size differing from the image size within '
                f'size_tolerance={self.size_tolerance} px; their masks are '
                'resized (nearest) to the image size when loaded',
                logger='current',
                level=logging.WARNING)
        if not data_list:
            raise ValueError(f'{self.split_description()}: no valid sample')
        return data_list

    def _check_category(self, info: dict) -> None:
        """Check ``category_id`` / ``category_name`` against the classes."""
        category_id = info['category_id']
        classes = self._metainfo.get('classes')
        if category_id is None or classes is None:
            return
        where = info['where']
        if not 0 <= category_id < len(classes):
            raise ValueError(
                f'{where}: category_id {category_id} does not index the '
                f'{len(classes)} classes of the dataset metainfo (give the '
                "class names with metainfo=dict(classes=...))")
        name = info.get('category_name')
        if name is not None and name != classes[category_id]:
            raise ValueError(f'{where}: category_name {name!r} is not class '
                             f'{category_id} of the dataset metainfo '
                             f'({classes[category_id]!r})')

    def _check_ref(self, info: dict, image_sizes: dict) -> None:
        """Validate one ref info dict in place (see the class docstring)."""
        where = info['where']
        texts = info['texts']
        if not texts:
            raise ValueError(f'{where}: no referring expression (empty '
                             'sentence list)')
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'{where}: missing or empty referring '
                                 f'expression {text!r}')
        self._check_category(info)
        img_path = info['img_path']
        if img_path not in image_sizes:
            image_sizes[img_path] = read_image_size(img_path, where)
        image_hw = image_sizes[img_path]
        seg_map_path = info.get('seg_map_path')
        if seg_map_path is not None:
            if seg_map_path not in image_sizes:
                image_sizes[seg_map_path] = read_image_size(
                    seg_map_path, where, kind='mask')
            mask_hw = image_sizes[seg_map_path]
            mask_name = f'mask {seg_map_path}'
        else:
            bbox = info['bbox']
            if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
                    or not all(is_number(v) for v in bbox)):
                raise ValueError(f'{where}: bbox must be 4 numbers [x1, y1, '
                                 f'x2, y2], got {bbox!r}')
            mask_hw = check_segmentation(info['segmentation'], where)
            mask_name = 'mask'
        if mask_hw is not None and mask_hw != image_hw:
            if (abs(mask_hw[0] - image_hw[0]) > self.size_tolerance
                    or abs(mask_hw[1] - image_hw[1]) > self.size_tolerance):
                raise ValueError(
                    f'{where}: {mask_name} size (h, w) {mask_hw} differs '
                    f'from the size {image_hw} of image {img_path} by more '
                    f'than size_tolerance={self.size_tolerance} px')
            self.num_size_mismatch += 1
            info['resize_mask'] = True
            print_log(
                f'{where}: {mask_name} size (h, w) {mask_hw} != size '
                f'{image_hw} of image {img_path} (within size_tolerance='
                f'{self.size_tolerance} px); the mask will be resized '
                '(nearest)',
                logger='current',
                level=logging.WARNING)
        if info['ori_height'] is None:
            info['ori_height'], info['ori_width'] = image_hw

    def _expand(self, info: dict) -> List[dict]:
        """Turn one validated ref info dict into data samples."""
        texts, sent_ids = info['texts'], info['sent_ids']
        base = dict(
            img_path=info['img_path'],
            ref_id=info['ref_id'],
            ann_id=info['ann_id'],
            image_id=info['image_id'],
            category_id=info['category_id'],
            ori_height=info['ori_height'],
            ori_width=info['ori_width'],
            seg_fields=[],
            reduce_zero_label=False)
        for key in ('segmentation', 'bbox', 'seg_map_path', 'resize_mask'):
            if key in info:
                base[key] = info[key]
        if self.text_mode == 'original':
            return [
                dict(base, text=text, sent_id=sent_id)
                for text, sent_id in zip(texts, sent_ids)
            ]
        if self.text_mode == 'select_first':
            return [dict(base, text=texts[0], sent_id=sent_ids[0])]
        if self.text_mode == 'concat':
            return [dict(base, text=' '.join(texts), sent_id=sent_ids[0])]
        return [
            dict(
                base,
                text=texts[0],
                sent_id=sent_ids[0],
                texts=list(texts),
                sent_ids=list(sent_ids))
        ]

    def get_data_info(self, idx: int) -> dict:
        """Get a data sample; in ``'random'`` mode draw its expression.

        Args:
            idx (int): Sample index.

        Returns:
            dict: The sample dict of :meth:`load_data_list` (a copy).
        """
        info = super().get_data_info(idx)
        if self.text_mode == 'random':
            k = random.randrange(len(info['texts']))
            texts, sent_ids = info['texts'], info['sent_ids']
            info['text'], info['sent_id'] = texts[k], sent_ids[k]
        return info
