# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/analysis_tools/browse_dataset.py."""
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_ROOT = REPO_ROOT.parent / 'shared' / 'data' / 'rrsisd_sample'


@pytest.fixture(scope='module')
def browse():
    """The browse_dataset module."""
    path = REPO_ROOT / 'tools' / 'analysis_tools' / 'browse_dataset.py'
    spec = importlib.util.spec_from_file_location('browse_dataset', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_writes_n_pictures(browse, vis_setup, tmp_path):
    out = tmp_path / 'browse'
    written = browse.main([
        vis_setup.config_file, '--split', 'test', '--output-dir',
        str(out), '--show-number', '3'
    ])
    files = sorted(out.glob('*.png'))
    assert len(files) == 3 and sorted(map(str, files)) == sorted(written)
    assert files[0].name.startswith('00000_ref')
    for f in files:  # 96 px images enlarged to the 512 px default
        assert cv2.imread(str(f)).shape == (512, 512, 3)

    out = tmp_path / 'browse_native'
    browse.main([
        vis_setup.config_file, '--split', 'control', '--output-dir',
        str(out), '--show-number', '1000', '--min-size', '0'
    ])
    files = sorted(out.glob('*.png'))
    assert 1 <= len(files) < 1000  # capped at the dataset size
    assert all(cv2.imread(str(f)).shape == (96, 96, 3) for f in files)


def test_unknown_split(browse, vis_setup, tmp_path):
    with pytest.raises(ValueError, match='unknown split'):
        browse.main([
            vis_setup.config_file, '--split', 'nosuch', '--output-dir',
            str(tmp_path)
        ])


def test_real_sample_mask_alignment(browse, vis_setup, tmp_path):
    if not (REAL_ROOT / 'rrsisd' / 'refs(unc).p').is_file():
        pytest.skip(f'real RRSIS-D sample not found at {REAL_ROOT}')
    out = tmp_path / 'real'
    browse.main([
        vis_setup.config_file, '--split', 'test', '--output-dir',
        str(out), '--cfg-options',
        f'test_dataloader.dataset.data_root={REAL_ROOT}'
    ])
    (picture, ) = out.glob('*.png')
    assert picture.name == '00000_ref11765_sent11765.png'
    drawn = cv2.imread(str(picture))
    image = cv2.imread(
        str(REAL_ROOT / 'images' / 'rrsisd' / 'JPEGImages' / '11765.jpg'))
    # the test pipeline keeps the ground truth at 800 x 800: full size
    assert drawn.shape == image.shape == (800, 800, 3)
    # below the banner exactly the referred airplane is drawn: its mask,
    # decoded here independently, plus the contour (3 px wide on an 800 px
    # image, so within 2 px of the mask)
    with open(REAL_ROOT / 'rrsisd' / 'instances.json') as f:
        (ann, ) = json.load(f)['annotations']
    rle = dict(ann['segmentation'][0])
    rle['counts'] = rle['counts'].encode()
    mask = mask_utils.decode(rle)
    assert mask.sum() == 10289
    changed = (drawn != image).any(axis=2)
    body = np.zeros_like(changed)
    body[150:] = True
    near = cv2.dilate(mask, np.ones((5, 5), np.uint8)) == 1
    assert not (changed & body & ~near).any()
    assert (changed | ~body)[mask == 1].all()
    # inside (away from the contour): 0.5 * image + 0.5 * green
    inside = (cv2.erode(mask, np.ones((7, 7), np.uint8)) == 1) & body
    assert inside.sum() > 5000
    blend = np.round(0.5 * image.astype(np.float64) +
                     0.5 * np.array([0, 255, 0])).astype(np.uint8)
    np.testing.assert_array_equal(drawn[inside], blend[inside])


def test_rsrefseg2_config(browse, rsrefseg2_setup, tmp_path):
    """An RSRefSeg 2 config: images resized keeping the aspect ratio (no
    padding in the pipeline); train pictures at the pipeline size, test
    pictures at the original size, where the metric is computed."""
    out = tmp_path / 'test'
    written = browse.main([
        rsrefseg2_setup.config_file, '--split', 'test', '--output-dir',
        str(out), '--min-size', '0'
    ])
    assert len(written) == 8  # 2 images x 4 expressions
    assert all(cv2.imread(f).shape == (96, 96, 3) for f in written)
    # the training pipeline (ground truth resized with the image) on the
    # test split: the synthetic data has no training split
    cfg = rsrefseg2_setup.cfg.copy()
    cfg.test_dataloader.dataset.pipeline = \
        cfg.train_dataloader.dataset.pipeline
    config = tmp_path / 'train_pipeline.py'
    cfg.dump(str(config))
    written = browse.main([
        str(config), '--split', 'test', '--output-dir',
        str(tmp_path / 'pipeline'), '--min-size', '0'
    ])
    assert len(written) == 8
    # 96 px resized to SAM 2.1's 128 px, the ground truth with it
    assert all(cv2.imread(f).shape == (128, 128, 3) for f in written)


def test_real_sample_rsrefseg2_config_draws_as_rsrefseg(
        browse, vis_setup, tmp_path):
    """configs/rsrefseg2_rrsisd.py on the real sample: the test pipeline
    keeps the ground truth at 800 x 800, the picture is the RSRefSeg one."""
    if not (REAL_ROOT / 'rrsisd' / 'refs(unc).p').is_file():
        pytest.skip(f'real RRSIS-D sample not found at {REAL_ROOT}')
    pictures = []
    for config in (str(REPO_ROOT / 'configs' / 'rsrefseg2_rrsisd.py'),
                   vis_setup.config_file):
        out = tmp_path / Path(config).stem
        (written, ) = browse.main([
            config, '--split', 'test', '--output-dir',
            str(out), '--cfg-options',
            f'test_dataloader.dataset.data_root={REAL_ROOT}'
        ])
        pictures.append(cv2.imread(written))
    assert pictures[0].shape == (800, 800, 3)
    np.testing.assert_array_equal(pictures[0], pictures[1])
