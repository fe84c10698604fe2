# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Referring segmentation datasets in the authors' one-line-per-sample JSONL.
"""
import json
from typing import Any, List, Optional

from mmseg.registry import DATASETS

from .base_refseg_dataset import BaseRefSegDataset
from .utils import (available_splits, join_img_path, read_text_lines, require,
                    to_int_id)


@DATASETS.register_module()
class RefSegJsonlDataset(BaseRefSegDataset):
    """Referring segmentation samples in the RSRefSeg authors' JSONL form.

    The RSRefSeg reference code converts RRSIS-D to
    ``datainfo/rrsisd_{train,val,test}.jsonl`` (see
    ``tools/dataset_converters/rrsisd_to_jsonl.py``; RefSegRS and RISBench
    with ``tools/dataset_converters/phrase_txt_to_jsonl.py``). One JSON object
    per line::

        {"split": "test", "image_id": 11765, "sent": "A airplane at the
         bottom", "file_name": "11765.jpg", "category_id": 2,
         "category_name": "airplane", "ann_id": 11765,
         "bbox": [148, 603, 375, 788],
         "segmentation": [{"size": [800, 800], "counts": "ZUa3..."}],
         "area": 2176840}

    Required fields: ``sent``, ``file_name``, ``image_id``, ``ann_id``,
    ``bbox``, ``segmentation``, and ``split`` when a split filter is set.
    ``category_id`` is an int, or absent / null for datasets without
    categories (RefSegRS, RISBench; the sample's ``category_id`` is then
    None); ``area`` is not used. Ids stored as strings are normalised to int.

    Class names: a JSONL file carries a ``category_name`` per line but no
    complete, ordered class list, so the dataset names no classes (its
    metainfo has no ``classes``; ``RefSegIoUMetric`` then calls category 3
    ``'category 3'``) unless ``metainfo=dict(classes=..., palette=...)``
    gives them, as ``configs/_base_/datasets/rrsisd_jsonl.py`` does with
    RRSIS-D's 20. With class names given, every line's ``category_id`` must
    index them and its ``category_name``, when not null, must be that class.

    Ids the JSONL form lacks: ``ref_id`` is the 0-based index of the line in
    the file (blank lines count; stable for a given file, independent of the
    split filter) unless the line carries its own ``ref_id``; ``sent_id`` is
    the line's ``sent_id`` if present, else ``ref_id``. ``ori_height`` /
    ``ori_width`` are read from the image header. The sample dicts are
    otherwise those of :class:`RRSISDDataset`, in file order (one expression
    per line, so every ``text_mode`` gives one sample per line).

    Every line is validated once when the dataset is built, see
    :class:`BaseRefSegDataset` for the checks, the ``skip_invalid`` counting
    and the size-quirk policy. A file that is not UTF-8 and a line that is
    not a JSON object are always errors naming the file and line (the split
    of such a line is unknown).

    Args:
        data_root (str): Dataset root. Defaults to ''.
        ann_file (str): JSONL file, relative to ``data_root``, e.g.
            ``'datainfo/rrsisd_test.jsonl'``. Defaults to ''.
        data_prefix (dict): ``img_path``: image folder relative to
            ``data_root``. Defaults to
            ``dict(img_path='images/rrsisd/JPEGImages')``.
        split (str, optional): Keep only lines whose ``split`` equals it;
            None keeps all lines. Defaults to None.
        text_mode (str): See :class:`BaseRefSegDataset`. Defaults to
            ``'original'``.
        skip_invalid (bool): Drop (count, log) invalid lines instead of
            raising. Defaults to False.
        size_tolerance (int): Tolerated RLE/image size difference in pixels
            per dimension. Defaults to 16.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``metainfo``: the class names, see above).

    Raises:
        ValueError: For a file that is not UTF-8 or a line that is not a
            JSON object (the message names the file and line), an unknown
            split (the message lists the available ones), an invalid line
            (the message names the file, line and ref id) or no sample.
        FileNotFoundError: For a missing JSONL or image file.
    """

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 data_prefix: dict = dict(img_path='images/rrsisd/JPEGImages'),
                 split: Optional[str] = None,
                 text_mode: str = 'original',
                 skip_invalid: bool = False,
                 size_tolerance: int = 16,
                 **kwargs) -> None:
        self.split = split
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            text_mode=text_mode,
            skip_invalid=skip_invalid,
            size_tolerance=size_tolerance,
            **kwargs)

    def load_records(self) -> List[Any]:
        """Parse the JSONL file and keep the lines of the split.

        Returns:
            list[tuple[int, dict]]: ``(0-based line index, object)``.

        Raises:
            ValueError: If the file is not UTF-8, a non-blank line is not a
                JSON object, or the split is unknown.
        """
        records = []
        for index, line in enumerate(read_text_lines(self.ann_file)):
            if not line.strip():
                continue
            where = f'{self.ann_file}: line {index + 1}'
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{where}: not valid JSON ({err})') from err
            if not isinstance(obj, dict):
                raise ValueError(f'{where}: expected a JSON object, got '
                                 f'{type(obj).__name__}')
            records.append((index, obj))
        if self.split is None:
            return records
        splits = [obj.get('split') for _, obj in records]
        if self.split not in splits:
            raise ValueError(f'{self.ann_file}: unknown split '
                             f'{self.split!r}; available splits: '
                             f'{available_splits(splits)}')
        return [(index, obj) for index, obj in records
                if obj.get('split') == self.split]

    def parse_record(self, record: Any) -> dict:
        """Turn one JSONL line into a ref info dict.

        Args:
            record (tuple[int, dict]): ``(0-based line index, object)``.

        Returns:
            dict: Ref info, see :meth:`BaseRefSegDataset.parse_record`.

        Raises:
            ValueError: For a missing or malformed field.
        """
        index, obj = record
        where = f'{self.ann_file}: line {index + 1}'
        ref_id = to_int_id(obj.get('ref_id', index), 'ref_id', where)
        where = f'{where} (ref_id {ref_id})'
        sent_id = to_int_id(obj.get('sent_id', ref_id), 'sent_id', where)
        category_id = obj.get('category_id')
        if category_id is not None:
            category_id = to_int_id(category_id, 'category_id', where)
        return dict(
            where=where,
            img_path=join_img_path(self.data_prefix['img_path'],
                                   require(obj, 'file_name', where), where),
            texts=[obj.get('sent')],
            sent_ids=[sent_id],
            ref_id=ref_id,
            ann_id=to_int_id(require(obj, 'ann_id', where), 'ann_id', where),
            image_id=to_int_id(
                require(obj, 'image_id', where), 'image_id', where),
            category_id=category_id,
            category_name=obj.get('category_name'),
            segmentation=require(obj, 'segmentation', where),
            bbox=require(obj, 'bbox', where),
            ori_height=None,
            ori_width=None)
