# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Private helpers shared by the referring segmentation datasets.

Holds the RRSIS-D metainfo, the id normalisation, the cheap structural
validation and the decoding of COCO run-length encodings (RLE) and polygons,
the decoding of mask image files (RefSegRS / RISBench, read with Pillow), the
join of RRSIS-D's ``refs(unc).p`` with its ``instances.json`` (also used by
``tools/dataset_converters/rrsisd_to_jsonl.py``) and the common base class of
:class:`RRSISDDataset`, :class:`RefSegJsonlDataset`,
:class:`RefSegRSDataset` and :class:`RISBenchDataset`. Nothing in this module
is registered.
"""
import io
import logging
import os.path as osp
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mmcv
import mmengine
import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

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

#: How a ref with several referring expressions becomes data samples.
TEXT_MODES = ('original', 'select_first', 'random', 'concat')

# Characters of a COCO compressed RLE string are chr(48 + c), 0 <= c < 64.
_RLE_CHAR_MIN, _RLE_CHAR_MAX = 48, 48 + 63
# 12 characters carry 60 bits, more than any count of a real image needs.
_RLE_MAX_CHARS_PER_COUNT = 12


def _is_int(value: Any) -> bool:
    """Whether ``value`` is a Python / numpy int (bools excluded)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, np.integer))


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a Python / numpy int or float (no bools)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, float, np.integer, np.floating))


def to_int_id(value: Any, field: str, where: str) -> int:
    """Normalise an id stored as an int or as a string of digits to int.

    RRSIS-D redistributions store ids sometimes as ``11765`` and sometimes as
    ``'11765'``.

    Args:
        value (Any): The stored id.
        field (str): Field name, for the error message.
        where (str): File and record the value comes from, for the error
            message.

    Returns:
        int: The id.

    Raises:
        ValueError: If ``value`` is missing (None), a bool, a float or a
            string that is not an integer.
    """
    if _is_int(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f'{where}: field {field!r} must be an int or a string '
                     f'holding an int, got {value!r}')


def require(record: dict, field: str, where: str) -> Any:
    """Return ``record[field]``.

    Args:
        record (dict): A ref, annotation, image or JSONL record.
        field (str): The required field.
        where (str): File and record, for the error message.

    Returns:
        Any: The stored value.

    Raises:
        ValueError: If the field is absent.
    """
    if field not in record:
        raise ValueError(f'{where}: missing field {field!r}')
    return record[field]


def compressed_rle_counts(counts: bytes) -> np.ndarray:
    """Decode a COCO compressed RLE string into its run lengths.

    pycocotools exposes no function returning the run lengths of a compressed
    RLE, and ``pycocotools.mask.decode`` does not check that they add up to
    ``h * w`` (a truncated string decodes to a silently wrong mask), so this is
    a vectorised numpy port of ``rleFrString`` from pycocotools'
    ``maskApi.c`` (BSD-2-Clause), used only for validation.

    Args:
        counts (bytes): The ``counts`` string of a compressed RLE, ASCII.

    Returns:
        np.ndarray: Run lengths, int64 of shape (M,), alternating background
        and foreground runs starting with background, in column-major
        (Fortran) pixel order. Values may be negative for a corrupt string.

    Raises:
        ValueError: If a character is outside the RLE alphabet, the string
            ends inside a count, or a count is longer than 12 characters.
    """
    # uint8 arithmetic: characters below '0' wrap around to >= 208
    c = np.frombuffer(counts, dtype=np.uint8) - np.uint8(_RLE_CHAR_MIN)
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    if c.max() > _RLE_CHAR_MAX - _RLE_CHAR_MIN:
        raise ValueError('compressed RLE counts contain characters outside '
                         "'0'..'o'")
    if c[-1] & 0x20:
        raise ValueError('compressed RLE counts end inside a count '
                         '(truncated string)')
    # a count is a run of 5-bit groups, little-endian; 0x20 = more follow
    last = np.flatnonzero((c & 0x20) == 0)
    first = np.empty_like(last)
    first[0] = 0
    first[1:] = last[:-1] + 1
    lengths = last - first + 1
    if lengths.max() > _RLE_MAX_CHARS_PER_COUNT:
        raise ValueError('compressed RLE counts hold a count longer than '
                         f'{_RLE_MAX_CHARS_PER_COUNT} characters')
    data = (c & 0x1f).astype(np.int64)
    values = data[first]
    for k in range(1, int(lengths.max())):
        longer = lengths > k
        values[longer] |= data[first[longer] + k] << (5 * k)
    # sign extension from bit 0x10 of a count's last character
    negative = (c[last] & 0x10) != 0
    values[negative] |= np.left_shift(-1, 5 * lengths[negative])
    # Counts from the 4th on are stored as a delta to the count two before.
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def _check_rle(rle: Any, where: str) -> Tuple[int, int]:
    """Check one RLE dict; see :func:`check_segmentation`."""
    if not isinstance(rle, dict):
        raise ValueError(f'{where}: malformed RLE: expected a dict with '
                         f"'size' and 'counts', got {type(rle).__name__}")
    for key in ('size', 'counts'):
        if key not in rle:
            raise ValueError(f'{where}: malformed RLE: missing {key!r}')
    size = rle['size']
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or any(not _is_int(s) or s <= 0 for s in size)):
        raise ValueError(f'{where}: malformed RLE: size must be two positive '
                         f'ints [h, w], got {size!r}')
    height, width = int(size[0]), int(size[1])
    counts = rle['counts']
    if isinstance(counts, str):
        try:
            counts = counts.encode('ascii')
        except UnicodeEncodeError as err:
            raise ValueError(f'{where}: malformed RLE: counts string is not '
                             f'ASCII ({err})') from err
    if isinstance(counts, bytes):
        try:
            runs = compressed_rle_counts(counts)
        except ValueError as err:
            raise ValueError(f'{where}: malformed RLE: {err}') from err
    elif isinstance(counts, (list, tuple, np.ndarray)):
        if not all(_is_int(n) for n in counts):
            raise ValueError(f'{where}: malformed RLE: uncompressed counts '
                             'must be ints')
        runs = np.asarray(counts, dtype=np.int64)
    else:
        raise ValueError(f'{where}: malformed RLE: counts must be a str, '
                         'bytes or a list of ints, got '
                         f'{type(counts).__name__}')
    if runs.size and runs.min() < 0:
        raise ValueError(f'{where}: malformed RLE: negative run length')
    total = int(runs.sum())
    if total != height * width:
        raise ValueError(f'{where}: malformed RLE: run lengths add up to '
                         f'{total} pixels, size {height}x{width} needs '
                         f'{height * width}')
    return height, width


def _is_polygon(poly: Any) -> bool:
    """Whether ``poly`` is a flat coordinate list [x1, y1, x2, y2, ...]."""
    if not isinstance(poly, (list, tuple, np.ndarray)):
        return False
    return len(poly) >= 6 and len(poly) % 2 == 0 and all(
        _is_number(v) for v in poly)


def check_segmentation(segmentation: Any,
                       where: str) -> Optional[Tuple[int, int]]:
    """Validate a segmentation without decoding it (about 50 us for RRSIS-D).

    Accepted forms: an RLE dict ``{'size': [h, w], 'counts': c}`` where ``c``
    is a COCO compressed string (str or bytes) or an uncompressed list of run
    lengths; a list of such dicts of one size (RRSIS-D stores a list holding
    one RLE dict); a list of polygons, each a flat list
    ``[x1, y1, x2, y2, ...]`` of at least 3 points in image pixels.

    Args:
        segmentation (Any): The segmentation as stored in the annotation.
        where (str): File and ref id, for the error message.

    Returns:
        tuple[int, int] | None: The RLE size ``(h, w)`` in pixels, or None for
        polygons (which are drawn at the image size).

    Raises:
        ValueError: If the structure is not one of the forms above, or run
            lengths are negative or do not add up to ``h * w``.
    """
    if isinstance(segmentation, dict):
        return _check_rle(segmentation, where)
    if not isinstance(segmentation, (list, tuple)) or not segmentation:
        raise ValueError(f'{where}: malformed segmentation: expected an '
                         'RLE dict, a list of RLE dicts or a list of '
                         f'polygons, got {segmentation!r:.80}')
    if all(isinstance(part, dict) for part in segmentation):
        sizes = {_check_rle(part, where) for part in segmentation}
        if len(sizes) > 1:
            raise ValueError(f'{where}: malformed segmentation: RLEs of '
                             f'different sizes {sorted(sizes)}')
        return sizes.pop()
    if all(_is_polygon(part) for part in segmentation):
        return None
    raise ValueError(f'{where}: malformed segmentation: expected an RLE dict, '
                     'a list of RLE dicts or a list of polygons (flat lists '
                     'of >= 6 numbers), got '
                     f'{segmentation!r:.80}')


def _to_coco_rle(rle: dict) -> dict:
    """Turn a checked RLE dict into the form pycocotools decodes."""
    height, width = int(rle['size'][0]), int(rle['size'][1])
    counts = rle['counts']
    if isinstance(counts, (list, tuple, np.ndarray)):
        return mask_utils.frPyObjects(
            dict(size=[height, width], counts=list(counts)), height, width)
    if isinstance(counts, str):
        counts = counts.encode('ascii')
    return dict(size=[height, width], counts=counts)


def decode_segmentation(segmentation: Any, height: int,
                        width: int) -> np.ndarray:
    """Decode a checked segmentation with pycocotools.

    Several RLEs or polygons are merged (union).

    Args:
        segmentation (Any): A segmentation accepted by
            :func:`check_segmentation`.
        height (int): Image height in pixels, used for polygons only.
        width (int): Image width in pixels, used for polygons only.

    Returns:
        np.ndarray: Binary mask, uint8 in {0, 1}, C-contiguous, of shape
        (h, w) = the RLE size for RLEs, (height, width) for polygons.
    """
    if isinstance(segmentation, dict):
        rle = _to_coco_rle(segmentation)
    elif isinstance(segmentation[0], dict):
        rles = [_to_coco_rle(part) for part in segmentation]
        rle = rles[0] if len(rles) == 1 else mask_utils.merge(rles)
    else:
        polygons = [
            np.asarray(poly, dtype=np.float64).tolist()
            for poly in segmentation
        ]
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    return np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)


def within_tolerance(mask_hw: Tuple[int, int], image_hw: Tuple[int, int],
                     tolerance: int) -> bool:
    """Whether two sizes differ by at most ``tolerance`` pixels per dim."""
    return (abs(mask_hw[0] - image_hw[0]) <= tolerance
            and abs(mask_hw[1] - image_hw[1]) <= tolerance)


def resize_mask(mask: np.ndarray, image_hw: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a (h, w) uint8 mask to ``image_hw``."""
    return mmcv.imresize(
        mask, (image_hw[1], image_hw[0]), interpolation='nearest')


def read_image_size(img_path: str,
                    where: str,
                    kind: str = 'image') -> Tuple[int, int]:
    """Read an image's size from its header (PIL, no pixel decoding).

    Pillow reads the headers of JPEG, PNG and TIFF files (RefSegRS / RISBench
    ``.tif``), whatever their compression.

    Args:
        img_path (str): Local image path.
        where (str): File and ref id, for the error message.
        kind (str): What the file is (``'image'`` or ``'mask'``), for the
            error message. Defaults to ``'image'``.

    Returns:
        tuple[int, int]: ``(height, width)`` in pixels.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If PIL cannot identify the file as an image.
    """
    try:
        with Image.open(img_path) as img:
            width, height = img.size
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'{where}: {kind} file not found: {img_path}') from err
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f'{where}: cannot read the {kind} header of '
                         f'{img_path}: {err}') from err
    return height, width


def read_mask_file(seg_map_path: str,
                   where: str,
                   threshold: float = 0,
                   backend_args: Optional[dict] = None) -> np.ndarray:
    """Read a mask image file and binarise it (object = value > threshold).

    The file is fetched with :func:`mmengine.fileio.get` and decoded with
    Pillow, which reads 1-bit, 8-bit and 16-bit grey-level TIFF / PNG / BMP
    files under any TIFF compression (none, LZW, deflate, PackBits), the
    RefSegRS ``masks/<id>.tif`` and RISBench ``mask/<file>`` included. Pixel
    values are compared as stored: grey levels for ``L`` / ``I;16`` masks,
    palette indices for ``P`` masks, 0/1 for ``1`` masks. A multi-channel mask
    (``RGB``, ``RGBA``, ``LA``) is accepted only when its colour channels are
    identical (a grey mask saved as colour; the alpha channel is ignored).

    Args:
        seg_map_path (str): Path or URI of the mask file.
        where (str): File and ref id, for the error message.
        threshold (float): Pixels with a value strictly greater are the
            referred object. Defaults to 0.
        backend_args (dict, optional): Arguments of the mmengine file
            backend. Defaults to None (local files).

    Returns:
        np.ndarray: Binary mask, uint8 in {0, 1}, C-contiguous, of shape
        (H, W) = the file's size in pixels.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If Pillow cannot decode it, or it has several colour
            channels that differ, or it is not 2-D.
    """
    try:
        data = mmengine.fileio.get(seg_map_path, backend_args=backend_args)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'{where}: mask file not found: {seg_map_path}') from err
    try:
        with Image.open(io.BytesIO(data)) as img:
            mask = np.asarray(img)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f'{where}: cannot decode the mask file '
                         f'{seg_map_path}: {err}') from err
    if mask.ndim == 3:
        colour = mask[..., :3] if mask.shape[2] >= 3 else mask[..., :1]
        if not (colour == colour[..., :1]).all():
            raise ValueError(
                f'{where}: mask file {seg_map_path} has {mask.shape[2]} '
                'channels whose colour values differ; expected a '
                'single-channel (grey-level) mask with the object > '
                f'{threshold}')
        mask = colour[..., 0]
    if mask.ndim != 2:
        raise ValueError(f'{where}: mask file {seg_map_path} decodes to an '
                         f'array of shape {mask.shape}; expected (H, W)')
    return np.ascontiguousarray(mask > threshold, dtype=np.uint8)


def load_rrsisd_index(refs_file: str, instances_file: str) -> dict:
    """Load RRSIS-D's ``refs(unc).p`` and ``instances.json`` and index them.

    Args:
        refs_file (str): Path of the pickled list of refs.
        instances_file (str): Path of the COCO-like ``instances.json``.

    Returns:
        dict: ``refs`` (list of ref dicts as stored), ``anns`` and ``imgs``
        (dicts from int id to the stored record) and ``cats`` (int category
        id to name), plus the two file names.

    Raises:
        ValueError: If the files do not have the RRSIS-D structure or an id
            is malformed or duplicated.
    """
    refs = mmengine.load(refs_file, file_format='pkl')
    if not isinstance(refs, list):
        raise ValueError(f'{refs_file}: expected a pickled list of refs, got '
                         f'{type(refs).__name__}')
    instances = mmengine.load(instances_file, file_format='json')
    if not isinstance(instances, dict):
        raise ValueError(f'{instances_file}: expected a JSON object')
    index = dict(refs=refs, refs_file=refs_file, instances_file=instances_file)
    for key, name in (('anns', 'annotations'), ('imgs', 'images'),
                      ('cats', 'categories')):
        records = require(instances, name, instances_file)
        table: Dict[int, Any] = {}
        for i, record in enumerate(records):
            where = f'{instances_file}: {name}[{i}]'
            if not isinstance(record, dict):
                raise ValueError(f'{where}: expected an object')
            record_id = to_int_id(require(record, 'id', where), 'id', where)
            if record_id in table:
                raise ValueError(f'{where}: duplicate id {record_id}')
            table[record_id] = (
                require(record, 'name', where) if key == 'cats' else record)
        index[key] = table
    return index


def join_rrsisd_ref(ref: Any, position: int, index: dict) -> dict:
    """Join one RRSIS-D ref with its annotation and image record.

    Args:
        ref (Any): The ref as stored in ``refs(unc).p``.
        position (int): Its position in the refs list, for error messages.
        index (dict): The output of :func:`load_rrsisd_index`.

    Returns:
        dict: ``where`` (error context: refs file and ref id), ``split``,
        int ``ref_id``, ``image_id``, ``ann_id``, ``category_id``, ``texts``
        (the ``sent`` of each sentence; None where absent), int ``sent_ids``,
        ``file_name`` (from the image record), ``ann`` and ``img`` (the stored
        annotation and image records).

    Raises:
        ValueError: If a field is missing or malformed, or the ref's
            ``ann_id`` / ``image_id`` is not in ``instances.json``, or the
            annotation belongs to another image.
    """
    refs_file, instances_file = index['refs_file'], index['instances_file']
    where = f'{refs_file}: refs[{position}]'
    if not isinstance(ref, dict):
        raise ValueError(f'{where}: expected a dict, got {type(ref).__name__}')
    ref_id = to_int_id(require(ref, 'ref_id', where), 'ref_id', where)
    where = f'{refs_file}: ref_id {ref_id}'
    image_id = to_int_id(require(ref, 'image_id', where), 'image_id', where)
    ann_id = to_int_id(require(ref, 'ann_id', where), 'ann_id', where)
    category_id = to_int_id(
        require(ref, 'category_id', where), 'category_id', where)
    if ann_id not in index['anns']:
        raise ValueError(f'{where}: unknown ann_id {ann_id} (not in '
                         f'{instances_file})')
    if image_id not in index['imgs']:
        raise ValueError(f'{where}: unknown image_id {image_id} (not in '
                         f'{instances_file})')
    ann = index['anns'][ann_id]
    ann_where = f'{where}: annotation {ann_id} in {instances_file}'
    ann_image_id = to_int_id(
        require(ann, 'image_id', ann_where), 'image_id', ann_where)
    if ann_image_id != image_id:
        raise ValueError(f'{where}: image_id {image_id} but its annotation '
                         f'{ann_id} in {instances_file} belongs to image '
                         f'{ann_image_id}')
    img = index['imgs'][image_id]
    file_name = require(img, 'file_name',
                        f'{where}: image {image_id} in {instances_file}')
    sentences = require(ref, 'sentences', where)
    if not isinstance(sentences, (list, tuple)):
        raise ValueError(f'{where}: sentences must be a list, got '
                         f'{type(sentences).__name__}')
    texts, sent_ids = [], []
    for k, sentence in enumerate(sentences):
        sent_where = f'{where}: sentences[{k}]'
        if not isinstance(sentence, dict):
            raise ValueError(f'{sent_where}: expected a dict')
        texts.append(sentence.get('sent'))
        sent_ids.append(
            to_int_id(
                require(sentence, 'sent_id', sent_where), 'sent_id',
                sent_where))
    return dict(
        where=where,
        split=ref.get('split'),
        ref_id=ref_id,
        image_id=image_id,
        ann_id=ann_id,
        category_id=category_id,
        texts=texts,
        sent_ids=sent_ids,
        file_name=file_name,
        ann=ann,
        img=img)


class BaseRefSegDataset(BaseDataset):
    """Common base of the referring segmentation datasets (not registered).

    Subclasses implement :meth:`load_records` (read the annotation file(s),
    apply the split, raise on file-level problems) and :meth:`parse_record`
    (turn one ref into a ref info dict, raise ``ValueError`` on a bad ref).
    :meth:`load_data_list` validates every ref once at build time and
    expands it into data samples according to ``text_mode``.

    The mask of a ref comes either from an annotation (``segmentation``, an
    RLE or polygons, with a ``bbox``: RRSIS-D, JSONL) or from a mask image
    file (``seg_map_path``: RefSegRS, RISBench).

    Validation (no mask is decoded; 17k RRSIS-D refs build in seconds):

    - the image file exists and PIL can read its size from the header
      (``FileNotFoundError`` / ``ValueError``);
    - every referring expression is a non-empty str (``ValueError``);
    - annotation masks: the segmentation is structurally decodable (see
      :func:`check_segmentation`; ``ValueError``) and ``bbox`` is four
      numbers (``ValueError``);
    - mask files: the file exists and PIL can read its size from the header
      (``FileNotFoundError`` / ``ValueError``);
    - the mask size ``(h, w)`` (RLE size or mask file size) equals the image
      size. Size-quirk policy: a few RRSIS-D images are 800x787, 800x801 or
      800x802 while their RLE is 800x800. If the two differ by at most
      ``size_tolerance`` pixels in each dimension, the ref is kept, counted in
      ``num_size_mismatch`` and logged as a warning, and
      :class:`LoadRefSegAnnotations` resizes the decoded mask with nearest
      neighbour to the image size. A larger difference is a ``ValueError``.

    Every error names the annotation file, the ref id and, where relevant,
    the image file. With ``skip_invalid=True`` invalid refs are dropped
    instead, each logged as a warning, counted in ``num_invalid`` and
    summarised at the end.

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
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`.

    Raises:
        ValueError: For an unknown ``text_mode`` or a negative
            ``size_tolerance``; when building, for an invalid ref (without
            ``skip_invalid``) or an empty split.
        FileNotFoundError: When building, for a missing image (without
            ``skip_invalid``).
    """

    METAINFO = dict(classes=RRSISD_CLASSES, palette=RRSISD_PALETTE)

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
            ``category_id`` (None when unknown), either ``segmentation`` and
            ``bbox`` or ``seg_map_path`` (mask file), ``ori_height`` and
            ``ori_width`` (None: taken from the image header).
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
            ``reduce_zero_label`` (False); in ``'random'`` text mode also
            ``texts`` and ``sent_ids``.

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
                    or not all(_is_number(v) for v in bbox)):
                raise ValueError(f'{where}: bbox must be 4 numbers [x1, y1, '
                                 f'x2, y2], got {bbox!r}')
            mask_hw = check_segmentation(info['segmentation'], where)
            mask_name = 'mask'
        if mask_hw is not None and mask_hw != image_hw:
            if not within_tolerance(mask_hw, image_hw, self.size_tolerance):
                raise ValueError(
                    f'{where}: {mask_name} size (h, w) {mask_hw} differs '
                    f'from the size {image_hw} of image {img_path} by more '
                    f'than size_tolerance={self.size_tolerance} px')
            self.num_size_mismatch += 1
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
        for key in ('segmentation', 'bbox', 'seg_map_path'):
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


def join_img_path(img_prefix: str, file_name: Any, where: str) -> str:
    """Join the image folder and a record's ``file_name``.

    Raises:
        ValueError: If ``file_name`` is not a non-empty str.
    """
    if not isinstance(file_name, str) or not file_name:
        raise ValueError(f'{where}: file_name must be a non-empty str, got '
                         f'{file_name!r}')
    return osp.join(img_prefix, file_name)


def available_splits(splits: Sequence[Any]) -> List[str]:
    """Sorted distinct split names, for error messages."""
    return sorted({str(s) for s in splits})
