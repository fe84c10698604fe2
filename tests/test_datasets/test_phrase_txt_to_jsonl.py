# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/dataset_converters/phrase_txt_to_jsonl.py: RefSegRS / RISBench ->
JSONL, loaded back with RefSegJsonlDataset."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmseg.registry import DATASETS
from pycocotools import mask as mask_utils
from utils.native_layouts import (REFSEGRS_SAMPLES, RISBENCH_SAMPLES,
                                  make_refsegrs, make_risbench)
from utils.refseg_data import META_KEYS

REPO = Path(__file__).parents[2]
CONVERTER = REPO / 'tools/dataset_converters/phrase_txt_to_jsonl.py'
FIELDS = [
    'split', 'image_id', 'sent', 'file_name', 'category_id', 'category_name',
    'ann_id', 'bbox', 'segmentation', 'area', 'ref_id', 'sent_id'
]
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackSegInputs', meta_keys=META_KEYS)
]
LAYOUTS = dict(
    refsegrs=('RefSegRSDataset', 'images', make_refsegrs, REFSEGRS_SAMPLES),
    risbench=('RISBenchDataset', 'img_rgb', make_risbench, RISBENCH_SAMPLES))


def _converter():
    spec = importlib.util.spec_from_file_location('phrase_txt_to_jsonl',
                                                  CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mask_to_annotation_values():
    mask = np.zeros((5, 6), np.uint8)
    mask[1:3, 2:5] = 1
    mask[4, 0] = 1
    ann = _converter().mask_to_annotation(mask)
    assert ann['bbox'] == [0, 1, 4, 4]
    assert ann['area'] == 7
    (rle, ) = ann['segmentation']
    assert rle['size'] == [5, 6] and isinstance(rle['counts'], str)
    decoded = mask_utils.decode(
        dict(size=rle['size'], counts=rle['counts'].encode()))
    np.testing.assert_array_equal(decoded, mask)
    empty = _converter().mask_to_annotation(np.zeros((3, 3), np.uint8))
    assert empty['bbox'] == [0, 0, 0, 0] and empty['area'] == 0


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_round_trip_matches_native(layout, tmp_path):
    dataset_type, img_dir, make, samples = LAYOUTS[layout]
    root = tmp_path / layout
    written = make(root, samples)
    out_dir = tmp_path / 'datainfo'
    counts = _converter().convert_phrase_txt_to_jsonl(layout, str(root),
                                                      str(out_dir))
    expected_counts = {
        split: sum(s['split'] == split for s in samples)
        for split in ('train', 'val', 'test')
    }
    assert counts == expected_counts
    assert sorted(os.listdir(out_dir)) == sorted(f'{layout}_{split}.jsonl'
                                                 for split in counts)
    first = json.loads(
        (out_dir / f'{layout}_train.jsonl').read_text().splitlines()[0])
    assert list(first) == FIELDS
    assert first['category_id'] is None and first['category_name'] is None
    assert first['split'] == 'train'
    name = first['file_name']
    assert name == ('0.tif' if layout == 'refsegrs' else 'P0003_0001.tif')
    rect = samples[0]['rect']
    assert first['bbox'] == list(rect)
    assert first['area'] == int(written['masks'][name].sum()) == \
        (rect[2] - rect[0] + 1) * (rect[3] - rect[1] + 1)
    for split in counts:
        native = DATASETS.build(
            dict(
                type=dataset_type,
                data_root=str(root),
                ann_file=f'output_phrase_{split}.txt',
                pipeline=PIPELINE))
        jsonl = DATASETS.build(
            dict(
                type='RefSegJsonlDataset',
                data_root=str(root),
                ann_file=str(out_dir / f'{layout}_{split}.jsonl'),
                data_prefix=dict(img_path=img_dir),
                pipeline=PIPELINE))
        assert len(native) == len(jsonl) == counts[split]
        for i in range(len(native)):
            a, b = native.get_data_info(i), jsonl.get_data_info(i)
            a.pop('seg_map_path')
            b.pop('segmentation'), b.pop('bbox')
            assert a == b
            assert a['category_id'] is None
            mask_a = native[i]['data_samples'].gt_sem_seg.data
            mask_b = jsonl[i]['data_samples'].gt_sem_seg.data
            assert mask_a.sum() > 0
            assert mask_a.equal(mask_b)


def test_converter_cli_and_errors(tmp_path):
    root = tmp_path / 'RefSegRS'
    make_refsegrs(root, REFSEGRS_SAMPLES)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([
        sys.executable,
        str(CONVERTER), 'refsegrs',
        str(root),
        str(tmp_path / 'out'), '--splits', 'test'
    ],
                          capture_output=True,
                          text=True,
                          env=env,
                          cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path / 'out') == ['refsegrs_test.jsonl']
    lines = (tmp_path / 'out' / 'refsegrs_test.jsonl').read_text().split('\n')
    assert len(lines) == 3 and lines[2] == ''
    assert [json.loads(line)['image_id'] for line in lines[:2]] == [12, 13]
    (root / 'output_phrase_val.txt').write_text('7\n')
    with pytest.raises(ValueError, match='line 1 .id 7.: missing or empty'):
        _converter().main(['refsegrs', str(root), str(tmp_path / 'o')])
    with pytest.raises(ValueError, match="unknown layout 'refcoco'"):
        _converter().convert_phrase_txt_to_jsonl('refcoco', str(root),
                                                 str(tmp_path / 'o'))


def test_jsonl_category_null_or_absent(tmp_path):
    root = tmp_path / 'RefSegRS'
    make_refsegrs(root, REFSEGRS_SAMPLES)
    _converter().convert_phrase_txt_to_jsonl(
        'refsegrs', str(root), str(tmp_path), splits=['test'])
    lines = (tmp_path / 'refsegrs_test.jsonl').read_text().splitlines()
    second = json.loads(lines[1])
    for key in ('category_id', 'category_name', 'ref_id', 'sent_id'):
        second.pop(key)
    third = json.loads(lines[1])
    third['category_id'] = '3'
    path = tmp_path / 'edited.jsonl'
    path.write_text(
        '\n'.join([lines[0], json.dumps(second),
                   json.dumps(third)]) + '\n')
    ds = DATASETS.build(
        dict(
            type='RefSegJsonlDataset',
            data_root=str(root),
            ann_file=str(path),
            data_prefix=dict(img_path='images')))
    assert [ds[i]['category_id'] for i in range(3)] == [None, None, 3]
    assert [ds[i]['ref_id'] for i in range(3)] == [0, 1, 1]
