# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Validation of inference inputs: image files, arrays and expressions.

Every bad input is refused before a model runs, with an error that names
the argument, its index and, for files, the path.
"""
import os.path as osp
from collections.abc import Iterable
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmengine import fileio

ImageType = Union[str, Path, np.ndarray]
ImagesType = Union[ImageType, Sequence[ImageType]]
TextsType = Union[str, Sequence[str]]


def read_image_file(path: str,
                    what: str = 'Image',
                    color_type: str = 'color',
                    imdecode_backend: str = 'cv2',
                    backend_args: Optional[dict] = None) -> np.ndarray:
    """Read an image file as mmcv's ``LoadImageFromFile`` does, or fail.

    The bytes come from :func:`mmengine.fileio.get` and are decoded by
    :func:`mmcv.imfrombytes` with the given settings (those of the
    pipeline's loader), so that a file accepted here is one the pipeline
    loads. Unlike the loader (a bare ``cv2.error`` for an empty file, an
    ``AssertionError`` for undecodable bytes), every failure is an error
    that names the file.

    Args:
        path (str): Image file.
        what (str): How messages call the file, e.g. ``'Image #3'``.
        color_type (str): ``flag`` of :func:`mmcv.imfrombytes`.
        imdecode_backend (str): ``backend`` of :func:`mmcv.imfrombytes`.
        backend_args (dict, optional): Of :func:`mmengine.fileio.get`.

    Returns:
        np.ndarray: The decoded image, for ``color_type='color'`` uint8
        (H, W, 3) in BGR order.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file is empty (0 bytes) or its bytes do not
            decode to an image (not an image file, or a corrupt or truncated
            one).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path!r}')
    content = fileio.get(path, backend_args=backend_args)
    if not content:
        raise ValueError(f'{what} is an empty file (0 bytes): {path!r}')
    try:
        image = mmcv.imfrombytes(
            content, flag=color_type, backend=imdecode_backend)
    except (cv2.error, OSError) as err:  # OSError: PIL's decoding errors
        raise ValueError(f'{what} cannot be decoded as an image: {path!r} '
                         f'({len(content)} bytes; {err})') from err
    if image is None or image.size == 0:
        raise ValueError(
            f'{what} cannot be decoded as an image: {path!r} ({len(content)} '
            'bytes; not an image file, or a corrupt or truncated one)')
    return image


def check_image(image: ImageType, idx: int,
                **loader_kwargs) -> Union[str, np.ndarray]:
    """Check one image: a readable image file or an RGB uint8 array.

    Args:
        image (str | Path | np.ndarray): File path, or RGB uint8 array of
            shape (H, W, 3), H, W >= 1.
        idx (int): Index of the image in the call, for messages.
        **loader_kwargs: ``color_type``, ``imdecode_backend`` and
            ``backend_args`` of :func:`read_image_file`. A file is decoded
            once here, so that a bad file stops the call before any model
            runs (one image decode per file, milliseconds, against the
            model's forward pass).

    Returns:
        str | np.ndarray: The path as a str, or the array.

    Raises:
        FileNotFoundError, ValueError: See :func:`read_image_file`;
            ``ValueError`` also for an array of another shape or dtype.
        TypeError: For any other type.
    """
    if isinstance(image, Path):
        image = str(image)
    if isinstance(image, str):
        read_image_file(image, f'Image #{idx}', **loader_kwargs)
        return image
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or \
                image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise ValueError(
                f'Image #{idx} must be an RGB uint8 array of shape (H, '
                f'W, 3), got {image.dtype} {image.shape}')
        return image
    raise TypeError(f'Image #{idx} must be a file path or an RGB uint8 '
                    f'array, got {type(image).__name__}')


def check_text(text: str, idx: int, arg: str = 'texts') -> str:
    """Check one referring expression: a str with a non-blank character.

    Args:
        text (str): The expression.
        idx (int): Index of the expression in the call, for messages.
        arg (str): Where it came from, e.g. ``'texts[2]'``.

    Returns:
        str: ``text`` unchanged.

    Raises:
        TypeError: If ``text`` is not a str (e.g. None).
        ValueError: If it is empty or blank.
    """
    if not isinstance(text, str):
        raise TypeError(f'Referring expression #{idx} must be a str, got '
                        f'{type(text).__name__}: {text!r} ({arg})')
    if not text.strip():
        raise ValueError(f'Referring expression #{idx} is empty: {text!r} '
                         f'({arg})')
    return text


def _as_list(value, arg: str, single: tuple, what: str) -> list:
    """``[value]`` for a single item, the items of a sequence, else error."""
    if isinstance(value, single):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        return list(value)
    raise TypeError(f'{arg} must be {what} or a sequence of them, got '
                    f'{type(value).__name__}: {value!r:.80}')


def pair_inputs(images: ImagesType, texts: TextsType,
                **loader_kwargs) -> List[Tuple[Union[str, np.ndarray], str]]:
    """Validate and pair images with referring expressions.

    Accepted forms: one image + one expression; one image + a sequence of
    expressions (each segmented on that image); a sequence of images + a
    sequence of as many expressions (pairwise). Each image (file or array)
    is checked once by :func:`check_image`, each expression by
    :func:`check_text`.

    Args:
        images (str | Path | np.ndarray | Sequence): Image file path(s)
            or RGB uint8 array(s) of shape (H, W, 3).
        texts (str | Sequence[str]): Referring expression(s).
        **loader_kwargs: See :func:`check_image`.

    Returns:
        list[tuple]: ``(image, text)`` pairs, the image a path or the RGB
        array.

    Raises:
        ValueError: For no input, an empty expression, a sequence of images
            with a single str or a sequence of another length, a malformed
            array, or an image file that is empty or does not decode.
        FileNotFoundError: For a missing image file.
        TypeError: For inputs of other types (e.g. ``texts=None``), naming
            the argument and index.
    """
    image_list = _as_list(images, 'images', (str, Path, np.ndarray),
                          'an image file path or an RGB uint8 array')
    text_list = _as_list(texts, 'texts', str, 'a referring expression (str)')
    single_image = isinstance(images, (str, Path, np.ndarray))
    if not image_list:
        raise ValueError('No image given')
    if not text_list:
        raise ValueError('No referring expression given')
    if single_image:
        image_list = image_list * len(text_list)
    elif isinstance(texts, str):
        raise ValueError(
            f'Got {len(image_list)} images but a single referring '
            'expression; pass a list with one expression per image')
    elif len(image_list) != len(text_list):
        raise ValueError(
            f'Got {len(image_list)} images and {len(text_list)} '
            'referring expressions; pass one expression per image (or '
            'a single image with several expressions)')
    # the expressions first: their checks cost nothing, a file's a decode
    text_list = [
        check_text(text, i,
                   'texts' if isinstance(texts, str) else f'texts[{i}]')
        for i, text in enumerate(text_list)
    ]
    checked = {}
    pairs = []
    for i, (image, text) in enumerate(zip(image_list, text_list)):
        key = str(image) if isinstance(image, (str, Path)) else id(image)
        if key not in checked:
            checked[key] = check_image(image, i, **loader_kwargs)
        pairs.append((checked[key], text))
    return pairs
