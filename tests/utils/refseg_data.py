# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Helpers writing tiny RRSIS-D-layout datasets for the dataset tests."""
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from pycocotools import mask as mask_utils

import mmrsrefseg  # noqa: F401  (registers the datasets and transforms)

REPO = Path(__file__).parents[2]
#: The real one-sample RRSIS-D excerpt, outside the repository.
REAL_ROOT = REPO.parent / 'shared/data/rrsisd_sample'
#: The meta keys the configs pack (``PackSegInputs(meta_keys=...)``).
META_KEYS = Config.fromfile(str(REPO /
                                'configs/_base_/datasets/rrsisd.py')).meta_keys
REFS = 'rrsisd/refs(unc).p'
INSTANCES = 'rrsisd/instances.json'
IMG_DIR = 'images/rrsisd/JPEGImages'


def require_real_sample() -> Path:
    """Return the real sample root or skip the test."""
    if not (REAL_ROOT / REFS).is_file():
        pytest.skip(f'real RRSIS-D sample not found at {REAL_ROOT}')
    return REAL_ROOT


def rect_mask(hw, rect) -> np.ndarray:
    """uint8 (h, w) mask, 1 inside the inclusive box (x1, y1, x2, y2)."""
    mask = np.zeros(hw, dtype=np.uint8)
    x1, y1, x2, y2 = rect
    mask[y1:y2 + 1, x1:x2 + 1] = 1
    return mask


def encode_rle(mask: np.ndarray) -> dict:
    """RRSIS-D style compressed RLE: counts as str."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(
        size=[int(s) for s in rle['size']],
        counts=rle['counts'].decode('ascii'))


def make_rrsisd(root, specs, str_ids=False):
    """Write a native-layout RRSIS-D dataset under ``root``.

    Args:
        root (Path): Output root.
        specs (list[dict]): One per ref: ``ref_id``, ``image_id``, ``split``,
            ``sents`` (list of str), ``img_hw`` (h, w), ``rect`` (x1, y1, x2,
            y2 inclusive), optional ``rle_hw`` (mask size, default img_hw),
            ``category_id`` (default 15). ``ann_id = ref_id + 1000``,
            ``sent_id = 10 * ref_id + k``.
        str_ids (bool): Store annotation and image ids as strings.

    Returns:
        dict: ``masks`` (ref_id -> uint8 mask at rle size), ``images``
        (image_id -> uint8 BGR image).
    """
    root = Path(root)
    (root / 'rrsisd').mkdir(parents=True, exist_ok=True)
    (root / IMG_DIR).mkdir(parents=True, exist_ok=True)
    refs, anns, imgs, masks, images = [], [], {}, {}, {}
    conv = str if str_ids else int
    for spec in specs:
        img_hw = tuple(spec['img_hw'])
        rle_hw = tuple(spec.get('rle_hw', img_hw))
        image_id = spec['image_id']
        file_name = f'{image_id:05d}.jpg'
        if image_id not in imgs:
            rng = np.random.default_rng(image_id)
            image = rng.integers(0, 255, (*img_hw, 3), dtype=np.uint8)
            cv2.imwrite(str(root / IMG_DIR / file_name), image)
            images[image_id] = image
            imgs[image_id] = dict(
                file_name=file_name,
                height=img_hw[0],
                width=img_hw[1],
                id=conv(image_id))
        mask = rect_mask(rle_hw, spec['rect'])
        masks[spec['ref_id']] = mask
        ann_id = spec['ref_id'] + 1000
        category_id = spec.get('category_id', 15)
        anns.append(
            dict(
                bbox=list(spec['rect']),
                categories_id=category_id,
                id=conv(ann_id),
                image_id=conv(image_id),
                segmentation=[encode_rle(mask)],
                area=int(mask.sum())))
        sent_ids = [10 * spec['ref_id'] + k for k in range(len(spec['sents']))]
        refs.append(
            dict(
                image_id=image_id,
                split=spec['split'],
                sentences=[
                    dict(tokens=str(s).split(), raw=s, sent_id=sid, sent=s)
                    for s, sid in zip(spec['sents'], sent_ids)
                ],
                file_name=file_name,
                category_id=category_id,
                ann_id=ann_id,
                sent_ids=sent_ids,
                ref_id=spec['ref_id']))
    categories = [
        dict(name=name, id=i) for i, name in enumerate(
            mmrsrefseg.datasets.RRSISDDataset.METAINFO['classes'])
    ]
    with open(root / REFS, 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    with open(root / INSTANCES, 'w') as f:
        json.dump(
            dict(
                images=list(imgs.values()),
                annotations=anns,
                categories=categories), f)
    return dict(masks=masks, images=images)


def edit_rrsisd(root, refs_fn=None, instances_fn=None):
    """Apply in-place edits to the pickled refs / instances of ``root``."""
    root = Path(root)
    if refs_fn is not None:
        with open(root / REFS, 'rb') as f:
            refs = pickle.load(f)
        refs_fn(refs)
        with open(root / REFS, 'wb') as f:
            pickle.dump(refs, f, protocol=2)
    if instances_fn is not None:
        with open(root / INSTANCES) as f:
            instances = json.load(f)
        instances_fn(instances)
        with open(root / INSTANCES, 'w') as f:
            json.dump(instances, f)


#: A small default dataset: 2 train images (3 refs), 1 val, 1 test, 1 control.
DEFAULT_SPECS = [
    dict(
        ref_id=1,
        image_id=10,
        split='train',
        sents=['the red tank on the left', 'leftmost red tank'],
        img_hw=(24, 32),
        rect=(2, 3, 9, 12),
        category_id=15),
    dict(
        ref_id=2,
        image_id=10,
        split='train',
        sents=['the blue tank'],
        img_hw=(24, 32),
        rect=(20, 5, 29, 20),
        category_id=15),
    dict(
        ref_id=3,
        image_id=11,
        split='train',
        sents=['a vehicle at the top', 'top vehicle', 'the car above'],
        img_hw=(20, 30),
        rect=(5, 0, 14, 4),
        category_id=18),
    dict(
        ref_id=4,
        image_id=12,
        split='val',
        sents=['the ship'],
        img_hw=(16, 16),
        rect=(0, 0, 15, 15),
        category_id=13),
    dict(
        ref_id=5,
        image_id=13,
        split='test',
        sents=['the airplane at the bottom'],
        img_hw=(30, 20),
        rect=(3, 20, 10, 29),
        category_id=2),
    dict(
        ref_id=6,
        image_id=13,
        split='control',
        sents=['the windmill'],
        img_hw=(30, 20),
        rect=(3, 20, 10, 29),
        category_id=2),
]


def build(cfg):
    """Build a dataset from a config dict in the mmseg scope."""
    from mmseg.registry import DATASETS
    return DATASETS.build(cfg)


def data_root_cfg(root, **kwargs):
    """RRSISDDataset config on ``root``."""
    return dict(type='RRSISDDataset', data_root=str(root), **kwargs)
