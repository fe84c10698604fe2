# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegRS in its native ``images/`` + ``masks/`` + phrase-file layout."""
import os.path as osp
import re
from typing import Any, Dict, List, Tuple

from mmseg.registry import DATASETS

from .base_refseg_dataset import BaseRefSegDataset
from .utils import read_text_lines

_DECIMAL = re.compile(r'[0-9]+')


@DATASETS.register_module()
class RefSegRSDataset(BaseRefSegDataset):
    """RefSegRS referring remote sensing image segmentation dataset.

    RefSegRS (Yuan et al., "RRSIS: Referring Remote Sensing Image
    Segmentation", IEEE TGRS 2024, arXiv:2306.08625) holds 4,420
    image-expression-mask triplets on 512x512 RGB aerial tiles cropped from
    the SkyScapes dataset. Native layout, as distributed::

        data_root/
        ├── images/<id>.tif                # RGB image
        ├── masks/<id>.tif                 # 8-bit mask, object > 0
        └── output_phrase_{train,val,test}.txt

    A phrase file holds one sample per line, ``<id> <expression words...>``;
    the id has no extension, the image is ``images/<id>.tif`` and the mask
    ``masks/<id>.tif``. Trailing whitespace and blank lines (at the end or
    elsewhere) are ignored; the words of the expression are joined by single
    spaces. A line holding an id but no word is an empty expression.

    Files are read with two maintained libraries that both handle TIFF
    (uncompressed, LZW, deflate, PackBits): image and mask sizes come from the
    file headers through Pillow when the dataset is built; in the pipeline,
    ``LoadImageFromFile`` decodes the image with OpenCV (mmcv's default
    ``cv2`` backend, BGR) and :class:`LoadRefSegAnnotations` reads the mask
    with Pillow and binarises it (1 where the value > 0).

    The sample dicts are those of :class:`RRSISDDataset` with the mask given
    as a file (``seg_map_path``) instead of ``segmentation`` / ``bbox``:

    - ``text``: the expression; ``img_path``, ``seg_map_path``: the files;
    - ``ref_id`` = ``sent_id``: the 0-based index of the line in the phrase
      file (blank lines count), unique within a split;
    - ``image_id`` = ``ann_id``: the RefSegRS id as int (an id that is not a
      non-negative decimal integer is an invalid line; two spellings of one
      number, e.g. ``007`` and ``7``, name two files and are an error naming
      both lines);
    - ``category_id``: None (the native layout carries no category);
    - ``ori_height`` / ``ori_width``: from the image header.

    One sample per line, in file order (one expression per line, so every
    ``text_mode`` gives one sample per line). Every line is validated once
    when the dataset is built, see :class:`BaseRefSegDataset`: the image and
    the mask exist and their headers are readable (an empty or non-image file
    is an error), the expression is not empty, and the mask size equals the
    image size (``size_tolerance`` defaults to 0 here, so any difference is
    an error). Errors name the phrase file, the line number and the id (and
    the image / mask file where relevant); with ``skip_invalid=True`` invalid
    lines are counted in ``num_invalid``, logged and dropped instead. A
    phrase file that is not UTF-8 is an error naming its first bad line.

    Args:
        data_root (str): Dataset root, see the layout above. Defaults to ''.
        ann_file (str): Phrase file, relative to ``data_root``. Defaults to
            ``'output_phrase_train.txt'``.
        data_prefix (dict): ``img_path`` and ``seg_map_path``: image and mask
            folders relative to ``data_root``. Defaults to
            ``dict(img_path='images', seg_map_path='masks')``.
        img_suffix (str): Appended to the id to name the image file.
            Defaults to ``'.tif'``.
        seg_map_suffix (str): Appended to the id to name the mask file.
            Defaults to ``'.tif'``.
        text_mode (str): See :class:`BaseRefSegDataset`. Defaults to
            ``'original'``.
        skip_invalid (bool): Drop (count, log) invalid lines instead of
            raising. Defaults to False.
        size_tolerance (int): Tolerated mask / image size difference in
            pixels per dimension (the mask is then resized with nearest
            neighbour when loaded). Defaults to 0.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ``metainfo``, ...).

    Raises:
        ValueError: For an invalid line (empty expression, malformed id,
            unreadable image or mask header, mask size differing from the
            image size; the message names the file, line and id), a phrase
            file that is not UTF-8, two ids of one number or a phrase file
            without any valid sample.
        FileNotFoundError: For a missing phrase file, image or mask.
    """

    #: The native layout carries no category: no class names.
    METAINFO = dict(classes=(), palette=[])

    #: How the first field of a line is called in error messages.
    _token_name = 'id'

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = 'output_phrase_train.txt',
                 data_prefix: dict = dict(
                     img_path='images', seg_map_path='masks'),
                 img_suffix: str = '.tif',
                 seg_map_suffix: str = '.tif',
                 text_mode: str = 'original',
                 skip_invalid: bool = False,
                 size_tolerance: int = 0,
                 **kwargs) -> None:
        self.img_suffix = img_suffix
        self.seg_map_suffix = seg_map_suffix
        self._ids: Dict[str, int] = {}
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            text_mode=text_mode,
            skip_invalid=skip_invalid,
            size_tolerance=size_tolerance,
            **kwargs)

    def split_description(self) -> str:
        """The phrase file, for log and error messages."""
        return self.ann_file

    def load_data_list(self) -> List[dict]:
        """Load, validate and expand the lines of the phrase file.

        Returns:
            list[dict]: See :meth:`BaseRefSegDataset.load_data_list`.
        """
        try:
            return super().load_data_list()
        finally:
            self._ids = {}

    def load_records(self) -> List[Any]:
        """Split the phrase file into its non-blank lines and number them.

        Returns:
            list[tuple[int, str, str]]: ``(0-based line index, first field,
            expression)``; the expression is '' when the line has a single
            field.

        Raises:
            FileNotFoundError: If the phrase file does not exist.
            ValueError: If it is not UTF-8, or see :meth:`number_files`.
        """
        records = []
        for index, line in enumerate(read_text_lines(self.ann_file)):
            fields = line.split()
            if fields:
                records.append((index, fields[0], ' '.join(fields[1:])))
        self._ids = self.number_files(records)
        return records

    def number_files(self, records: List[Any]) -> Dict[str, int]:
        """The id of each first field: the RefSegRS id, as int.

        Args:
            records (list[tuple[int, str, str]]): See :meth:`load_records`.

        Returns:
            dict[str, int]: First field -> id, for every first field that is
            a non-negative decimal integer (other lines are invalid, see
            :meth:`sample_ids`).

        Raises:
            ValueError: If two different first fields are the same number
                (``007`` and ``7``: two files, one id); the message names
                both lines.
        """
        ids: Dict[str, int] = {}
        first_line: Dict[int, Tuple[str, int]] = {}
        for index, token, _ in records:
            if not _DECIMAL.fullmatch(token):
                continue
            number = int(token)
            other, other_index = first_line.setdefault(number, (token, index))
            if other != token:
                raise ValueError(
                    f'{self.ann_file}: line {other_index + 1} (id {other}) '
                    f'and line {index + 1} (id {token}) name two files with '
                    f'the same id {number}')
            ids[token] = number
        return ids

    def sample_ids(self, token: str, where: str) -> Tuple[int, int]:
        """``(image_id, ann_id)`` of a line, see :meth:`number_files`.

        Args:
            token (str): The first field of the line.
            where (str): File and line, for the error message.

        Returns:
            tuple[int, int]: The id twice (one mask per image file).

        Raises:
            ValueError: If the first field has no id (not a non-negative
                decimal integer).
        """
        if token not in self._ids:
            raise ValueError(f'{where}: a RefSegRS id is a non-negative '
                             f'integer (images/<id>.tif), got {token!r}')
        return self._ids[token], self._ids[token]

    def parse_record(self, record: Any) -> dict:
        """Turn one line into a ref info dict.

        Args:
            record (tuple[int, str, str]): See :meth:`load_records`.

        Returns:
            dict: Ref info, see :meth:`BaseRefSegDataset.parse_record`.

        Raises:
            ValueError: For a malformed id.
        """
        index, token, text = record
        where = f'{self.ann_file}: line {index + 1} ({self._token_name} ' \
                f'{token})'
        image_id, ann_id = self.sample_ids(token, where)
        return dict(
            where=where,
            img_path=osp.join(self.data_prefix['img_path'],
                              token + self.img_suffix),
            seg_map_path=osp.join(self.data_prefix['seg_map_path'],
                                  token + self.seg_map_suffix),
            texts=[text],
            sent_ids=[index],
            ref_id=index,
            ann_id=ann_id,
            image_id=image_id,
            category_id=None,
            ori_height=None,
            ori_width=None)
