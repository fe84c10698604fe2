# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Image headers and mask image files (RefSegRS / RISBench), with Pillow."""
import io
from typing import Optional, Tuple

import mmcv
import mmengine
import numpy as np
from PIL import Image, UnidentifiedImageError


def read_image_size(img_path: str,
                    where: str,
                    kind: str = 'image') -> Tuple[int, int]:
    """Read an image's size from its header (PIL, no pixel decoding).

    Pillow reads the headers of JPEG, PNG and TIFF files (RefSegRS / RISBench
    ``.tif``), whatever their compression. An empty file, a file that is not
    an image (text, garbage) and a file cut inside its header are errors; a
    file cut after its header is found when its pixels are decoded.

    Args:
        img_path (str): Local image path.
        where (str): File and ref id, for the error message.
        kind (str): What the file is (``'image'`` or ``'mask'``), for the
            error message. Defaults to ``'image'``.

    Returns:
        tuple[int, int]: ``(height, width)`` in pixels.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If PIL cannot identify the file as an image or read its
            header (the message names the file).
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
        ValueError: If Pillow cannot decode it (empty, garbage, truncated),
            or it has several colour channels that differ, or it is not 2-D.
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


def resize_mask(mask: np.ndarray, image_hw: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a (h, w) uint8 mask to ``image_hw``."""
    return mmcv.imresize(
        mask, (image_hw[1], image_hw[0]), interpolation='nearest')
