# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Validation and decoding of COCO segmentations (RLE or polygons).

Both go through pycocotools. Two properties of its compressed-RLE string
parser (``rleFrString`` in pycocotools' ``maskApi.c``) shape the validation:
it reads past the end of a string whose last character announces a further
character, and it accepts characters outside its alphabet ``'0'..'o'``, so
both are checked on the string first; and ``decode`` rejects run lengths
adding up to more than ``h * w`` pixels but leaves the tail of the mask
uninitialised when they add up to fewer (a truncated string). A compressed
string is therefore accepted only when pycocotools decodes it and encodes the
decoded mask back to the same string.
"""
import re
from typing import Any, Optional, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from .fields import is_int, is_number

# A compressed RLE string: characters chr(48 + c), 0 <= c < 64; a character
# with bit 0x20 of c set continues the count, so the last one lies in
# '0'..'O' (c < 32).
_COMPRESSED_RLE = re.compile(rb'[0-o]*[0-O]')


def _check_compressed_counts(counts: bytes, height: int, width: int,
                             where: str) -> None:
    """Check a compressed RLE string with pycocotools (see module doc)."""
    if not counts:
        raise ValueError(f'{where}: malformed RLE: empty counts string')
    if not re.fullmatch(rb'[0-o]*', counts):
        raise ValueError(f'{where}: malformed RLE: counts contain characters '
                         "outside '0'..'o'")
    if not _COMPRESSED_RLE.fullmatch(counts):
        raise ValueError(f'{where}: malformed RLE: counts end inside a count '
                         '(truncated string)')
    rle = dict(size=[height, width], counts=counts)
    needs = f'size {height}x{width} needs {height * width} pixels'
    try:
        mask = mask_utils.decode(rle)
    except ValueError as err:  # pycocotools: 'Invalid RLE mask ...'
        raise ValueError(f'{where}: malformed RLE: {needs}, the run lengths '
                         f'add up to more or are negative ({err})') from err
    if mask_utils.encode(mask)['counts'] != counts:
        raise ValueError(f'{where}: malformed RLE: {needs}, the run lengths '
                         'add up to fewer (a truncated string) or are not in '
                         'the canonical form pycocotools writes')


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
            or any(not is_int(s) or s <= 0 for s in size)):
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
        _check_compressed_counts(counts, height, width, where)
        return height, width
    if not isinstance(counts, (list, tuple, np.ndarray)):
        raise ValueError(f'{where}: malformed RLE: counts must be a str, '
                         'bytes or a list of ints, got '
                         f'{type(counts).__name__}')
    # uncompressed: the list holds the run lengths themselves
    if not all(is_int(n) for n in counts):
        raise ValueError(f'{where}: malformed RLE: uncompressed counts '
                         'must be ints')
    runs = np.asarray(counts, dtype=np.int64)
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
        is_number(v) for v in poly)


def check_segmentation(segmentation: Any,
                       where: str) -> Optional[Tuple[int, int]]:
    """Validate a segmentation, see the module docstring.

    Accepted forms: an RLE dict ``{'size': [h, w], 'counts': c}`` where ``c``
    is a COCO compressed string (str or bytes) or an uncompressed list of run
    lengths; a list of such dicts of one size (RRSIS-D stores a list holding
    one RLE dict); a list of polygons, each a flat list
    ``[x1, y1, x2, y2, ...]`` of at least 3 points in image pixels.

    A compressed string is decoded once (about 1 ms for RRSIS-D's 800x800).

    Args:
        segmentation (Any): The segmentation as stored in the annotation.
        where (str): File and ref id, for the error message.

    Returns:
        tuple[int, int] | None: The RLE size ``(h, w)`` in pixels, or None for
        polygons (which are drawn at the image size).

    Raises:
        ValueError: If the structure is not one of the forms above, or the
            run lengths are negative or do not add up to ``h * w``.
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
    """Turn an RLE dict into the form pycocotools decodes."""
    height, width = int(rle['size'][0]), int(rle['size'][1])
    counts = rle['counts']
    if isinstance(counts, (list, tuple, np.ndarray)):
        return mask_utils.frPyObjects(
            dict(size=[height, width], counts=list(counts)), height, width)
    if isinstance(counts, str):
        counts = counts.encode('ascii')
    return dict(size=[height, width], counts=counts)


def decode_segmentation(segmentation: Any, height: int, width: int,
                        where: str) -> np.ndarray:
    """Decode a segmentation with pycocotools.

    Several RLEs or polygons are merged (union). The segmentation is expected
    to have passed :func:`check_segmentation` (the datasets check every one
    when they are built); for other input the errors of pycocotools and of
    the dict / list access are re-raised as a ``ValueError`` naming ``where``.

    Args:
        segmentation (Any): A segmentation accepted by
            :func:`check_segmentation`.
        height (int): Image height in pixels, used for polygons only.
        width (int): Image width in pixels, used for polygons only.
        where (str): Image and ref id, for the error message.

    Returns:
        np.ndarray: Binary mask, uint8 in {0, 1}, C-contiguous, of shape
        (h, w) = the RLE size for RLEs, (height, width) for polygons.

    Raises:
        ValueError: If pycocotools cannot decode it or it lacks a key.
    """
    try:
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
            rle = mask_utils.merge(
                mask_utils.frPyObjects(polygons, height, width))
        mask = mask_utils.decode(rle)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ValueError(f'{where}: cannot decode the segmentation '
                         f'{segmentation!r:.80} ({type(err).__name__}: '
                         f'{err})') from err
    return np.ascontiguousarray(mask, dtype=np.uint8)
