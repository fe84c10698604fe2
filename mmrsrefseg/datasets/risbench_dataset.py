# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RISBench in its native ``img_rgb/`` + ``mask/`` + phrase-file layout."""
from typing import Any, Dict, List

from mmseg.registry import DATASETS

from .refsegrs_dataset import RefSegRSDataset


@DATASETS.register_module()
class RISBenchDataset(RefSegRSDataset):
    """RISBench referring remote sensing image segmentation dataset.

    RISBench (Dong et al., "Cross-Modal Bidirectional Interaction Model for
    Referring Remote Sensing Image Segmentation", arXiv:2410.08613, 2024)
    holds 52,472 image-expression-mask triplets on RGB images (those of
    VRSBench). Native layout, as distributed::

        data_root/
        ├── img_rgb/<file>                 # RGB image
        ├── mask/<file>                    # single-channel mask, object > 0
        └── output_phrase_{train,val,test}.txt

    A phrase file holds one sample per line, ``<file> <expression words...>``,
    where ``<file>`` is the file name **with** its extension, the same in
    ``img_rgb/`` and ``mask/``. Parsing, file reading (Pillow for headers and
    masks, OpenCV for images; TIFF included), validation, ``skip_invalid``
    and the sample dicts are those of :class:`RefSegRSDataset`, except the
    ids:

    - ``ref_id`` = ``sent_id``: the 0-based index of the line in the phrase
      file (blank lines count);
    - ``image_id`` = ``ann_id``: the 0-based index of the line's file name
      among the distinct file names of the phrase file, in order of first
      appearance (file names are not integers), independent of
      ``skip_invalid``;
    - ``category_id``: None.

    Args:
        data_root (str): Dataset root, see the layout above. Defaults to ''.
        ann_file (str): Phrase file, relative to ``data_root``. Defaults to
            ``'output_phrase_train.txt'``.
        data_prefix (dict): ``img_path`` and ``seg_map_path``: image and mask
            folders relative to ``data_root``. Defaults to
            ``dict(img_path='img_rgb', seg_map_path='mask')``.
        img_suffix (str): Appended to the first field to name the image file.
            Defaults to '' (the field is the file name).
        seg_map_suffix (str): Appended to the first field to name the mask
            file. Defaults to ''.
        **kwargs: Other arguments of :class:`RefSegRSDataset` (``text_mode``,
            ``skip_invalid``, ``size_tolerance`` (default 0)) and of
            :class:`mmengine.dataset.BaseDataset`.

    Raises:
        ValueError: For an invalid line (the message names the file, line and
            file name) or a phrase file without any valid sample.
        FileNotFoundError: For a missing phrase file, image or mask.
    """

    _token_name = 'file'

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = 'output_phrase_train.txt',
                 data_prefix: dict = dict(
                     img_path='img_rgb', seg_map_path='mask'),
                 img_suffix: str = '',
                 seg_map_suffix: str = '',
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            **kwargs)

    def number_files(self, records: List[Any]) -> Dict[str, int]:
        """Number the file names in order of first appearance.

        Args:
            records (list[tuple[int, str, str]]): See
                :meth:`RefSegRSDataset.load_records`.

        Returns:
            dict[str, int]: File name -> 0-based index among the distinct
            file names (every line has an id).
        """
        ids: Dict[str, int] = {}
        for _, token, _ in records:
            ids.setdefault(token, len(ids))
        return ids
