# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegJsonlDataset and the RRSIS-D -> JSONL converter."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from utils.refseg_data import (IMG_DIR, META_KEYS, build, data_root_cfg,
                               edit_rrsisd, encode_rle, rect_mask,
                               require_real_sample)

from mmrsrefseg.datasets import RefSegJsonlDataset, RRSISDDataset

REPO = Path(__file__).parents[2]
CONVERTER = REPO / 'tools/dataset_converters/rrsisd_to_jsonl.py'
FIELDS = [
    'split', 'image_id', 'sent', 'file_name', 'category_id', 'category_name',
    'ann_id', 'bbox', 'segmentation', 'area'
]
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackSegInputs', meta_keys=META_KEYS)
]


def _converter():
    spec = importlib.util.spec_from_file_location('rrsisd_to_jsonl', CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jsonl_cfg(root, ann_file, **kwargs):
    return dict(
        type='RefSegJsonlDataset',
        data_root=str(root),
        ann_file=ann_file,
        data_prefix=dict(img_path=IMG_DIR),
        **kwargs)


def _line(split='test', sent='the tank', file_name='00010.jpg', **kwargs):
    mask = rect_mask((24, 32), (2, 3, 9, 12))
    record = dict(
        split=split,
        image_id=10,
        sent=sent,
        file_name=file_name,
        category_id=15,
        category_name='storagetank',
        ann_id=1001,
        bbox=[2, 3, 9, 12],
        segmentation=[encode_rle(mask)],
        area=80)
    record.update(kwargs)
    return json.dumps(record)


def _write(root, lines, name='datainfo/x.jsonl'):
    path = Path(root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines) + '\n')
    return name


def test_jsonl_samples_ref_ids_and_split_filter(native_root):
    root, _ = native_root
    ann = _write(root, [
        _line(split='train', sent='first'), '',
        _line(split='test', sent='second', ann_id='1002', image_id='10'),
        _line(split='train', sent='third', ref_id=77, sent_id=78)
    ])
    ds = build(_jsonl_cfg(root, ann))
    assert isinstance(ds, RefSegJsonlDataset)
    assert [ds[i]['text'] for i in range(3)] == ['first', 'second', 'third']
    # ref_id = 0-based line index (the blank line counts) unless given
    assert [ds[i]['ref_id'] for i in range(3)] == [0, 2, 77]
    assert [ds[i]['sent_id'] for i in range(3)] == [0, 2, 78]
    assert ds[1]['ann_id'] == 1002 and ds[1]['image_id'] == 10
    # ori size from the image header (the image is 24 x 32)
    assert (ds[0]['ori_height'], ds[0]['ori_width']) == (24, 32)
    train = build(_jsonl_cfg(root, ann, split='train'))
    assert [train[i]['ref_id'] for i in range(len(train))] == [0, 77]
    with pytest.raises(ValueError) as err:
        build(_jsonl_cfg(root, ann, split='val'))
    assert "unknown split 'val'" in str(err.value)
    assert "['test', 'train']" in str(err.value)


@pytest.mark.parametrize('line, exc, fragments', [
    ('{"split": "test", ', ValueError, ['line 2', 'not valid JSON']),
    ('[1, 2]', ValueError, ['line 2', 'expected a JSON object']),
    (_line(sent=''), ValueError, ['line 2 (ref_id 1)', 'missing or empty']),
    (_line(sent=None), ValueError, ['line 2 (ref_id 1)', 'missing or empty']),
    (_line(file_name='nope.jpg'), FileNotFoundError,
     ['line 2 (ref_id 1)', 'nope.jpg']),
    (_line(segmentation=[{
        'size': [24, 32]
    }]), ValueError, ['line 2 (ref_id 1)', "missing 'counts'"]),
    (_line(segmentation=[encode_rle(np.zeros((8, 8), np.uint8))]), ValueError,
     ['line 2 (ref_id 1)', '00010.jpg', 'size_tolerance']),
    (_line(ann_id='x1'), ValueError, ['line 2 (ref_id 1)', "field 'ann_id'"]),
    (_line(bbox=[1, 2, 3]), ValueError,
     ['line 2 (ref_id 1)', 'bbox must be 4 numbers']),
])
def test_jsonl_invalid_lines(native_root, line, exc, fragments):
    root, _ = native_root
    ann = _write(root, [_line(), line])
    with pytest.raises(exc) as err:
        build(_jsonl_cfg(root, ann))
    for fragment in fragments + ['x.jsonl']:
        assert fragment in str(err.value), (fragment, str(err.value))


def _bytes(*lines):
    return ('\n'.join(lines) + '\n').encode()


# (JSONL content, fragments of the message after the file name)
BAD_JSONL_FILES = {
    'empty': (b'', [' (split None): no valid sample']),
    'blank_lines_only': (b'\n  \n', [' (split None): no valid sample']),
    'truncated': (_bytes(_line(),
                         _line())[:-40], [': line 2: not valid JSON']),
    # a Latin-1 expression on line 2
    'not_utf8':
    (_bytes(_line()) + b'{"sent": "caf\xe9"}\n', [': line 2: not UTF-8 text']),
    'garbage': (bytes(range(128, 256)), [': line 1: not UTF-8 text']),
    'text':
    (b'split image_id sent\ntest 10 the tank\n', [': line 1: not valid JSON']),
    'array_line': (_bytes(_line(), '[1, 2]'),
                   [': line 2: expected a JSON object, got list']),
    'number_line':
    (_bytes(_line(), '5'), [': line 2: expected a JSON object, got int']),
    'null_line': (_bytes('null'),
                  [': line 1: expected a JSON object, got NoneType']),
    # wrong-type fields
    'sent_int':
    (_bytes(_line(), _line(sent=5)),
     [': line 2 (ref_id 1): missing or empty referring '
      'expression 5']),
    'image_id_float': (_bytes(_line(image_id=10.5)),
                       [": line 1 (ref_id 0): field 'image_id' must be"]),
    'bbox_str': (_bytes(_line(bbox='2 3 9 12')),
                 [': line 1 (ref_id 0): bbox must be 4 numbers']),
    'segmentation_str': (_bytes(_line(segmentation='ZUa3')),
                         [': line 1 (ref_id 0): malformed segmentation']),
    'rle_size_str':
    (_bytes(_line(segmentation=[dict(size='24x32', counts='13')])),
     [': line 1 (ref_id 0): malformed RLE: size must be']),
    'file_name_list': (_bytes(_line(file_name=['00010.jpg'])),
                       [': line 1 (ref_id 0): file_name must be']),
}


@pytest.mark.parametrize('case', sorted(BAD_JSONL_FILES))
def test_bad_jsonl_files(native_root, case):
    root, _ = native_root
    content, fragments = BAD_JSONL_FILES[case]
    path = root / 'datainfo' / 'bad.jsonl'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        build(_jsonl_cfg(root, 'datainfo/bad.jsonl'))
    message = str(err.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_jsonl_byte_order_mark(native_root):
    root, _ = native_root
    path = root / 'datainfo' / 'bom.jsonl'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'\xef\xbb\xbf' + _bytes(_line(sent='first')))
    assert build(_jsonl_cfg(root, 'datainfo/bom.jsonl'))[0]['text'] == 'first'


RRSISD_METAINFO = dict(
    classes=RRSISDDataset.METAINFO['classes'],
    palette=RRSISDDataset.METAINFO['palette'])


def test_jsonl_classes(native_root):
    """Without metainfo no class names (category ids pass through); with
    them, every line's category is checked against them."""
    root, _ = native_root
    ann = _write(root, [_line(), _line(category_id=2, category_name=None)])
    plain = build(_jsonl_cfg(root, ann))
    assert 'classes' not in plain.metainfo
    assert [plain[i]['category_id'] for i in range(2)] == [15, 2]
    named = build(_jsonl_cfg(root, ann, metainfo=RRSISD_METAINFO))
    assert named.metainfo == RRSISDDataset.METAINFO
    assert named.metainfo['classes'][named[0]['category_id']] == \
        'storagetank'
    # RefSegRS / RISBench JSONL: no category, no class names reported
    refsegrs = _write(
        root, [_line(category_id=None, category_name=None)],
        name='datainfo/refsegrs.jsonl')
    assert 'classes' not in build(_jsonl_cfg(root, refsegrs)).metainfo
    for line, fragment in (
        (_line(category_id=20), 'category_id 20 does not index the 20'),
        (_line(category_name='tank'), "category_name 'tank' is not class 15"),
    ):
        bad = _write(root, [_line(), line], name='datainfo/bad.jsonl')
        with pytest.raises(ValueError) as err:
            build(_jsonl_cfg(root, bad, metainfo=RRSISD_METAINFO))
        assert 'bad.jsonl: line 2 (ref_id 1)' in str(err.value)
        assert fragment in str(err.value)
    # no class names given: an index into nothing is refused
    bad = _write(root, [_line()], name='datainfo/bad.jsonl')
    with pytest.raises(ValueError, match='does not index the 0 classes'):
        build(_jsonl_cfg(root, bad, metainfo=dict(classes=())))


def test_jsonl_missing_field(native_root):
    root, _ = native_root
    record = json.loads(_line())
    record.pop('image_id')
    ann = _write(root, [json.dumps(record)])
    with pytest.raises(ValueError, match="line 1 .*missing field 'image_id'"):
        build(_jsonl_cfg(root, ann))


def test_jsonl_skip_invalid(native_root):
    root, _ = native_root
    ann = _write(root, [
        _line(sent='ok'),
        _line(sent=' '),
        _line(file_name='gone.jpg'),
        _line(sent='ok too')
    ])
    ds = build(_jsonl_cfg(root, ann, skip_invalid=True))
    assert ds.num_invalid == 2
    assert [ds[i]['ref_id'] for i in range(len(ds))] == [0, 3]


def test_converter_help():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(CONVERTER), '--help'],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert 'data_root' in proc.stdout and '--ann-file' in proc.stdout


def test_converter_round_trip_matches_native(native_root, tmp_path):
    root, _ = native_root
    out_dir = tmp_path / 'datainfo'
    counts = _converter().convert_rrsisd_to_jsonl(str(root), str(out_dir))
    assert counts == dict(train=6, val=1, test=1, control=1)
    assert sorted(os.listdir(out_dir)) == [
        'rrsisd_control.jsonl', 'rrsisd_test.jsonl', 'rrsisd_train.jsonl',
        'rrsisd_val.jsonl'
    ]
    first = json.loads(
        (out_dir / 'rrsisd_train.jsonl').read_text().splitlines()[0])
    assert list(first) == FIELDS
    assert first['category_name'] == 'storagetank'
    assert first['area'] == 80
    for split in ('train', 'val', 'test', 'control'):
        native = build(data_root_cfg(root, split=split, pipeline=PIPELINE))
        jsonl = build(
            _jsonl_cfg(
                root,
                str(out_dir / f'rrsisd_{split}.jsonl'),
                pipeline=PIPELINE))
        assert len(native) == len(jsonl) > 0
        for i in range(len(native)):
            a, b = native.get_data_info(i), jsonl.get_data_info(i)
            for key in ('ref_id', 'sent_id'):  # JSONL has no such ids
                a.pop(key), b.pop(key)
            assert a == b
            mask_a = native[i]['data_samples'].gt_sem_seg.data
            mask_b = jsonl[i]['data_samples'].gt_sem_seg.data
            assert mask_a.sum() > 0
            assert mask_a.equal(mask_b)


def test_converter_unknown_ann_id(native_root, tmp_path):
    root, _ = native_root
    edit_rrsisd(root, refs_fn=lambda refs: refs[1].update(ann_id='4242'))
    with pytest.raises(ValueError, match='ref_id 2: unknown ann_id 4242'):
        _converter().main([str(root), str(tmp_path / 'out')])


def test_converter_reproduces_real_jsonl(tmp_path):
    root = require_real_sample()
    _converter().main([str(root), str(tmp_path)])
    assert (tmp_path / 'rrsisd_test.jsonl').read_bytes() == \
        (root / 'rrsisd_test.jsonl').read_bytes()


def test_real_jsonl_matches_native():
    root = require_real_sample()
    jsonl = build(
        _jsonl_cfg(root, 'rrsisd_test.jsonl', split='test', test_mode=True))
    native = build(data_root_cfg(root, split='test', test_mode=True))
    assert len(jsonl) == 1
    a, b = jsonl[0], native[0]
    assert a['text'] == 'A airplane at the bottom'
    assert (a['ref_id'], a['sent_id']) == (0, 0)
    assert (b['ref_id'], b['sent_id']) == (11765, 11765)
    for key in ('ref_id', 'sent_id'):
        a.pop(key), b.pop(key)
    assert a == b
    assert osp.basename(a['img_path']) == '11765.jpg'


def test_jsonl_rrsisd_datasets_share_sample_keys(native_root):
    root, _ = native_root
    ann = _write(root, [_line()])
    assert set(build(_jsonl_cfg(root, ann))[0]) == set(
        build(data_root_cfg(root, split='test'))[0])
