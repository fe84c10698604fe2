# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Writers of tiny RefSegRS- and RISBench-layout datasets (real TIFF files).

Images are written with Pillow (LZW-compressed RGB TIFF, as GIS tools write
them) and read back by the pipeline with OpenCV; masks are written with
OpenCV (8-bit grey-level TIFF, 0 / 255) and read back with Pillow, so every
file crosses from one library to the other. Also imported by
``tests/test_tools/test_native_layouts_dist.py``.
"""
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def rect_mask(hw, rect) -> np.ndarray:
    """uint8 (h, w) mask, 1 inside the inclusive box (x1, y1, x2, y2)."""
    mask = np.zeros(hw, dtype=np.uint8)
    x1, y1, x2, y2 = rect
    mask[y1:y2 + 1, x1:x2 + 1] = 1
    return mask


def write_rgb_tiff(path, rgb: np.ndarray, compression='tiff_lzw') -> None:
    """Write an (H, W, 3) uint8 RGB array as a TIFF with Pillow."""
    image = Image.fromarray(rgb)
    assert image.mode == 'RGB'
    image.save(str(path), format='TIFF', compression=compression)


def write_mask(path, mask01: np.ndarray, value: int = 255) -> None:
    """Write a {0, 1} mask as an 8-bit grey-level image (0 / ``value``)
    with OpenCV (TIFF for ``.tif``, PNG for ``.png``)."""
    assert cv2.imwrite(str(path), (mask01 * value).astype(np.uint8))


def _image(seed, hw):
    return np.random.default_rng(seed).integers(
        0, 256, (*hw, 3), dtype=np.uint8)


def _write_layout(root, samples, img_dir, mask_dir, name_of, lines_of):
    root = Path(root)
    (root / img_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    images, masks, texts = {}, {}, {}
    for k, sample in enumerate(samples):
        name = name_of(sample)
        if name not in images:
            hw = tuple(sample['img_hw'])
            images[name] = _image(k + 1, hw)
            img_path = root / img_dir / name
            if img_path.suffix == '.png':
                cv2.imwrite(str(img_path), images[name][..., ::-1])
            else:
                write_rgb_tiff(img_path, images[name])
            masks[name] = rect_mask(
                tuple(sample.get('mask_hw', hw)), sample['rect'])
            write_mask(root / mask_dir / name, masks[name])
    for split in sorted({s['split'] for s in samples}):
        lines = [lines_of(s) for s in samples if s['split'] == split]
        # trailing whitespace on a line and blank lines at the end, as in
        # the distributed files
        text = '\n'.join(lines) + '  \n\n\n'
        (root / f'output_phrase_{split}.txt').write_text(text)
        texts[split] = text
    return dict(images=images, masks=masks, texts=texts)


def make_refsegrs(root, samples):
    """Write ``images/<id>.tif``, ``masks/<id>.tif`` and
    ``output_phrase_{split}.txt`` under ``root``.

    Args:
        root (Path): Dataset root.
        samples (list[dict]): One per line: ``id`` (str), ``split``,
            ``text`` (written as is after the id and a space), ``img_hw``
            (h, w), ``rect`` (x1, y1, x2, y2 inclusive), optional ``mask_hw``.
            Lines sharing an id share the first one's image and mask.

    Returns:
        dict: ``images`` (id -> RGB uint8 (h, w, 3)), ``masks`` (id -> {0, 1}
        uint8), ``texts`` (split -> phrase file text).
    """
    return _write_layout(root, samples, 'images', 'masks',
                         lambda s: f'{s["id"]}.tif',
                         lambda s: f'{s["id"]} {s["text"]}')


def make_risbench(root, samples):
    """Write ``img_rgb/<file>``, ``mask/<file>`` and
    ``output_phrase_{split}.txt`` under ``root``.

    Args:
        root (Path): Dataset root.
        samples (list[dict]): As for :func:`make_refsegrs` with ``file``
            (name with extension, ``.tif`` or ``.png``) instead of ``id``.

    Returns:
        dict: As for :func:`make_refsegrs`, keyed by file name.
    """
    return _write_layout(root, samples, 'img_rgb', 'mask', lambda s: s['file'],
                         lambda s: f'{s["file"]} {s["text"]}')


#: RefSegRS fixture: id 1 twice in train (two expressions, one image).
REFSEGRS_SAMPLES = [
    dict(
        id='0',
        split='train',
        text='the long road on the left',
        img_hw=(24, 32),
        rect=(0, 0, 5, 23)),
    dict(
        id='1',
        split='train',
        text='a red   car',
        img_hw=(20, 30),
        rect=(10, 4, 17, 9)),
    dict(
        id='1',
        split='train',
        text='red car near the building\t',
        img_hw=(20, 30),
        rect=(10, 4, 17, 9)),
    dict(
        id='2',
        split='train',
        text='building',
        img_hw=(16, 16),
        rect=(3, 3, 12, 12)),
    dict(
        id='7',
        split='val',
        text='the white van',
        img_hw=(18, 22),
        rect=(1, 2, 6, 8)),
    dict(
        id='12',
        split='test',
        text='trees at the bottom',
        img_hw=(30, 20),
        rect=(2, 20, 17, 29)),
    dict(
        id='13',
        split='test',
        text='the sidewalk',
        img_hw=(30, 20),
        rect=(0, 0, 19, 1)),
]

#: RISBench fixture: file names with extensions, one file on two lines.
RISBENCH_SAMPLES = [
    dict(
        file='P0003_0001.tif',
        split='train',
        text='the large ship at the top',
        img_hw=(24, 32),
        rect=(4, 0, 27, 6)),
    dict(
        file='00017.png',
        split='train',
        text='a storage tank',
        img_hw=(16, 20),
        rect=(5, 5, 9, 9)),
    dict(
        file='P0003_0001.tif',
        split='train',
        text='ship in the upper part',
        img_hw=(24, 32),
        rect=(4, 0, 27, 6)),
    dict(
        file='P0100_0002.tif',
        split='val',
        text='the bridge',
        img_hw=(20, 20),
        rect=(0, 9, 19, 11)),
    dict(
        file='P0200_0003.tif',
        split='test',
        text='the airplane on the right',
        img_hw=(22, 26),
        rect=(15, 5, 24, 15)),
]
