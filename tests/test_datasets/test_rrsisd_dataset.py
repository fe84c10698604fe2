# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RRSISDDataset on tiny native-layout files and on the real sample."""
import json
import logging
import os
import os.path as osp
import pickle
import random
from unittest import mock

import numpy as np
import pytest
from utils.refseg_data import (DEFAULT_SPECS, IMG_DIR, INSTANCES, META_KEYS,
                               REFS, build, data_root_cfg, edit_rrsisd,
                               encode_rle, make_rrsisd, rect_mask,
                               require_real_sample)

from mmrsrefseg.datasets import RRSISDDataset
from mmrsrefseg.datasets.rrsisd_dataset import RRSISD_CLASSES

SAMPLE_KEYS = {
    'img_path', 'text', 'ref_id', 'ann_id', 'image_id', 'sent_id',
    'category_id', 'segmentation', 'bbox', 'ori_height', 'ori_width',
    'seg_fields', 'reduce_zero_label', 'sample_idx'
}
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 1024), keep_ratio=False),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackSegInputs', meta_keys=META_KEYS)
]


def _log_calls(fn):
    """Run ``fn`` and return its result and the WARNING messages logged."""
    target = 'mmrsrefseg.datasets.base_refseg_dataset.print_log'
    with mock.patch(target) as print_log:
        result = fn()
    return result, [
        call.args[0] for call in print_log.call_args_list
        if call.kwargs.get('level') == logging.WARNING
    ]


def test_train_samples(native_root):
    root, out = native_root
    ds = build(data_root_cfg(root, split='train'))
    assert isinstance(ds, RRSISDDataset)
    # refs 1 (2 expressions), 2 (1) and 3 (3): one sample per expression
    assert len(ds) == 6
    first = ds[0]
    assert set(first) == SAMPLE_KEYS
    assert first['img_path'] == osp.join(str(root), IMG_DIR, '00010.jpg')
    assert first['text'] == 'the red tank on the left'
    assert (first['ref_id'], first['ann_id'], first['image_id'],
            first['sent_id'], first['category_id']) == (1, 1001, 10, 10, 15)
    assert first['bbox'] == [2, 3, 9, 12]
    assert (first['ori_height'], first['ori_width']) == (24, 32)
    assert first['seg_fields'] == [] and first['reduce_zero_label'] is False
    assert first['segmentation'] == [encode_rle(out['masks'][1])]
    assert [ds[i]['text'] for i in range(6)] == [
        'the red tank on the left', 'leftmost red tank', 'the blue tank',
        'a vehicle at the top', 'top vehicle', 'the car above'
    ]
    assert [ds[i]['sent_id'] for i in range(6)] == [10, 11, 20, 30, 31, 32]
    assert [ds[i]['ref_id'] for i in range(6)] == [1, 1, 2, 3, 3, 3]
    assert ds.num_invalid == 0 and ds.num_size_mismatch == 0
    assert ds._index is None  # the joined annotations are not kept
    assert ds.metainfo['classes'][15] == 'storagetank'
    assert len(ds.metainfo['palette']) == 20


def test_splits_and_unknown_split(native_root):
    root, _ = native_root
    for split, ref_ids in (('val', [4]), ('test', [5]), ('control', [6])):
        ds = build(data_root_cfg(root, split=split))
        assert [ds[i]['ref_id'] for i in range(len(ds))] == ref_ids
    with pytest.raises(ValueError) as err:
        build(data_root_cfg(root, split='tset'))
    msg = str(err.value)
    assert "unknown split 'tset'" in msg and REFS in msg
    assert "['control', 'test', 'train', 'val']" in msg


def test_string_ids_are_normalised(tmp_path):
    make_rrsisd(tmp_path, DEFAULT_SPECS, str_ids=True)
    edit_rrsisd(
        tmp_path,
        refs_fn=lambda refs: [
            ref.update(ref_id=str(ref['ref_id']), ann_id=str(ref['ann_id']))
            for ref in refs
        ])
    ds = build(data_root_cfg(tmp_path, split='test'))
    sample = ds[0]
    assert (sample['ref_id'], sample['ann_id'],
            sample['image_id']) == (5, 1005, 13)
    assert all(
        type(sample[k]) is int
        for k in ('ref_id', 'ann_id', 'image_id', 'sent_id', 'category_id'))


def test_text_modes(native_root):
    root, _ = native_root
    first = build(data_root_cfg(root, text_mode='select_first'))
    assert [first[i]['text'] for i in range(len(first))] == [
        'the red tank on the left', 'the blue tank', 'a vehicle at the top'
    ]
    concat = build(data_root_cfg(root, text_mode='concat'))
    assert [concat[i]['text'] for i in range(len(concat))] == [
        'the red tank on the left leftmost red tank', 'the blue tank',
        'a vehicle at the top top vehicle the car above'
    ]
    assert [concat[i]['sent_id'] for i in range(3)] == [10, 20, 30]
    rand = build(data_root_cfg(root, text_mode='random'))
    assert len(rand) == 3
    random.seed(0)
    draws = [rand[2] for _ in range(60)]
    drawn = {draw['text']: draw['sent_id'] for draw in draws}
    assert drawn == {
        'a vehicle at the top': 30,
        'top vehicle': 31,
        'the car above': 32
    }
    with pytest.raises(ValueError, match='text_mode must be one of'):
        build(data_root_cfg(root, text_mode='all'))


def _drop_image(root):
    os.remove(osp.join(root, IMG_DIR, '00011.jpg'))


def _ref(refs, ref_id):
    return next(ref for ref in refs if ref['ref_id'] == ref_id)


def _ann(instances, ann_id):
    return next(a for a in instances['annotations'] if a['id'] == ann_id)


def _set_seg(ann_id, segmentation):
    return dict(instances_fn=lambda inst: _ann(inst, ann_id).update(
        segmentation=segmentation))


# (edit, expected exception, fragments of the message)
BAD_CASES = {
    'missing_image': (None, FileNotFoundError,
                      ['00011.jpg', 'ref_id 3', 'image file not found']),
    'unknown_ann_id':
    (dict(refs_fn=lambda refs: _ref(refs, 2).update(ann_id=999)), ValueError,
     [REFS, 'ref_id 2', 'unknown ann_id 999', INSTANCES]),
    'unknown_image_id':
    (dict(refs_fn=lambda refs: _ref(refs, 2).update(image_id=77)), ValueError,
     [REFS, 'ref_id 2', 'unknown image_id 77']),
    'ann_of_other_image':
    (dict(refs_fn=lambda refs: _ref(refs, 2).update(ann_id=1003)), ValueError,
     ['ref_id 2', 'belongs to image 11']),
    'missing_sent':
    (dict(refs_fn=lambda refs: _ref(refs, 1)['sentences'][1].pop('sent')),
     ValueError, [REFS, 'ref_id 1', 'missing or empty']),
    'blank_sent': (dict(
        refs_fn=lambda refs: _ref(refs, 3)['sentences'][0].update(sent='  ')),
                   ValueError, [REFS, 'ref_id 3', 'missing or empty']),
    'no_sentences':
    (dict(refs_fn=lambda refs: _ref(refs, 2).update(sentences=[])), ValueError,
     [REFS, 'ref_id 2', 'no referring expression']),
    'rle_no_counts': (_set_seg(1002, [dict(size=[24, 32])]), ValueError,
                      ['ref_id 2', "malformed RLE: missing 'counts'"]),
    'rle_no_size': (_set_seg(1002, [dict(counts='13')]), ValueError,
                    ['ref_id 2', "malformed RLE: missing 'size'"]),
    'rle_bad_size_type': (_set_seg(1002, [dict(size='24x32', counts='13')]),
                          ValueError,
                          ['ref_id 2', 'size must be two positive ints']),
    'rle_bad_counts_type': (_set_seg(1002, [dict(size=[24, 32], counts=5)]),
                            ValueError, ['ref_id 2', 'counts must be a str']),
    'rle_truncated': (_set_seg(1002, [
        dict(
            size=[24, 32],
            counts=encode_rle(rect_mask((24, 32),
                                        (20, 5, 29, 20)))['counts'][:4])
    ]), ValueError, ['ref_id 2', 'run lengths add up to', 'needs 768']),
    'rle_uncompressed_bad_sum':
    (_set_seg(1002, [dict(size=[24, 32], counts=[700, 60])]), ValueError,
     ['ref_id 2', 'add up to 760 pixels']),
    'mask_size_beyond_tolerance':
    (_set_seg(1002, [encode_rle(np.zeros((24, 49), np.uint8))]), ValueError,
     ['ref_id 2', '00010.jpg', 'size_tolerance=16', '(24, 49)']),
    'no_segmentation':
    (dict(instances_fn=lambda inst: _ann(inst, 1002).pop('segmentation')),
     ValueError, ['ref_id 2', "missing field 'segmentation'"]),
    # wrong-type fields
    'sentences_str':
    (dict(refs_fn=lambda refs: _ref(refs, 2).update(sentences='the tank')),
     ValueError, [REFS, 'ref_id 2', 'sentences must be a list, got str']),
    'sent_int':
    (dict(refs_fn=lambda refs: _ref(refs, 2)['sentences'][0].update(sent=5)),
     ValueError, [REFS, 'ref_id 2', 'empty referring expression 5']),
    'ann_id_float':
    (dict(refs_fn=lambda refs: _ref(refs, 2).update(ann_id=1002.0)),
     ValueError, [REFS, 'ref_id 2', "field 'ann_id' must be an int"]),
    'segmentation_str': (_set_seg(1002, 'ZUa3'), ValueError,
                         ['ref_id 2', 'malformed segmentation']),
    'bbox_str':
    (dict(instances_fn=lambda inst: _ann(inst, 1002).update(bbox='2,3,9,12')),
     ValueError, ['ref_id 2', 'bbox must be 4 numbers']),
    'file_name_int':
    (dict(instances_fn=lambda inst: inst['images'][0].update(file_name=10)),
     ValueError, ['ref_id 1', INSTANCES, 'file_name must be a non-empty']),
    # categories: the ref's id must index the 20 classes, the name in
    # instances.json must be that class
    'category_id_beyond_classes':
    (dict(refs_fn=lambda refs: _ref(refs, 2).update(category_id=20)),
     ValueError, ['ref_id 2', 'category_id 20 does not index the 20 classes']),
    'category_name_mismatch': (dict(
        instances_fn=lambda inst: inst['categories'][15].update(name='tank')),
                               ValueError, [
                                   'ref_id 1', "category_name 'tank'",
                                   "('storagetank')"
                               ]),
}


@pytest.mark.parametrize('case', sorted(BAD_CASES))
def test_invalid_refs_raise(native_root, case):
    root, _ = native_root
    edit, exc, fragments = BAD_CASES[case]
    if edit is None:
        _drop_image(root)
    else:
        edit_rrsisd(root, **edit)
    with pytest.raises(exc) as err:
        build(data_root_cfg(root, split='train'))
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_uncompressed_rle_is_valid(native_root):
    root, out = native_root
    mask = out['masks'][5]
    runs = [30 * 3 + 20]  # columns 0-2 and rows 0-19 of column 3
    runs += [10, 20] * 7 + [10]
    runs.append(mask.size - sum(runs))
    edit_rrsisd(root, **_set_seg(1005, [dict(size=[30, 20], counts=runs)]))
    ds = build(data_root_cfg(root, split='test', pipeline=TEST_PIPELINE))
    gt = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(gt, mask)


def test_skip_invalid_counts_and_logs(native_root):
    root, _ = native_root
    _drop_image(root)  # ref 3
    edit_rrsisd(root, refs_fn=lambda refs: _ref(refs, 2).update(ann_id=999))
    ds, warnings = _log_calls(
        lambda: build(data_root_cfg(root, split='train', skip_invalid=True)))
    assert ds.num_invalid == 2
    assert [ds[i]['ref_id'] for i in range(len(ds))] == [1, 1]
    assert len(warnings) == 3
    assert 'ref_id 2' in warnings[0] and 'unknown ann_id' in warnings[0]
    assert 'ref_id 3' in warnings[1] and '00011.jpg' in warnings[1]
    assert 'skipped 2 invalid refs, kept 2 samples' in warnings[2]


def test_skip_invalid_all_invalid_is_an_error(native_root):
    root, _ = native_root
    os.remove(osp.join(root, IMG_DIR, '00012.jpg'))
    with pytest.raises(ValueError, match="split 'val'.*no valid sample"):
        build(data_root_cfg(root, split='val', skip_invalid=True))


@pytest.mark.parametrize('img_h', [787, 802])
def test_size_quirk_within_tolerance(tmp_path, img_h):
    spec = dict(
        ref_id=9,
        image_id=11766,
        split='test',
        sents=['the storage tank'],
        img_hw=(img_h, 800),
        rle_hw=(800, 800),
        rect=(100, 500, 299, 789))
    out = make_rrsisd(tmp_path, [spec])
    ds, warnings = _log_calls(lambda: build(
        data_root_cfg(tmp_path, split='test', pipeline=TEST_PIPELINE)))
    assert ds.num_size_mismatch == 1 and ds.num_invalid == 0
    assert len(warnings) == 2
    assert 'ref_id 9' in warnings[0] and f'({img_h}, 800)' in warnings[0]
    assert '1 refs have a mask size differing' in warnings[1]
    packed = ds[0]
    gt = packed['data_samples'].gt_sem_seg.data[0].numpy()
    assert gt.shape == (img_h, 800)
    # nearest neighbour: destination row y samples source row
    # floor(y * 800 / img_h); columns are unchanged
    rows = np.floor(np.arange(img_h) * 800 / img_h).astype(int)
    np.testing.assert_array_equal(gt, out['masks'][9][rows])
    assert packed['inputs'].shape == (3, 1024, 1024)
    # the dataset decided; the transform resizes what it marked
    assert ds.get_data_info(0)['resize_mask'] is True
    with pytest.raises(ValueError, match='size_tolerance=1 px'):
        build(data_root_cfg(tmp_path, split='test', size_tolerance=1))


def test_negative_size_tolerance_is_an_error(native_root):
    root, _ = native_root
    with pytest.raises(ValueError, match='size_tolerance must be'):
        build(data_root_cfg(root, size_tolerance=-1))


# ---- bad annotation and image files ------------------------------------
# Each case writes one bad file; the build fails with a ValueError whose
# message names the file (and the entry where one applies).


def _pickle(obj):
    return pickle.dumps(obj, protocol=2)


def _json(obj):
    return json.dumps(obj).encode()


def _instances(root, **changes):
    with open(osp.join(root, INSTANCES)) as f:
        instances = json.load(f)
    instances.update(changes)
    return _json(instances)


def _refs(root):
    with open(osp.join(root, REFS), 'rb') as f:
        return pickle.load(f)


# (new content of the refs file given the root, fragments of the message)
BAD_REFS_FILES = {
    'empty': (lambda root: b'', ['empty file, expected a pickle']),
    'truncated':
    (lambda root: _pickle(_refs(root))[:60], ['not a readable pickle']),
    'garbage':
    (lambda root: bytes(range(200, 256)) * 3, ['not a readable pickle']),
    'text':
    (lambda root: b'ref_id split\n1 train\n', ['not a readable pickle']),
    'dict': (lambda root: _pickle(dict(refs=_refs(root))),
             ['expected a pickled list of refs, got dict']),
    'list_of_str': (lambda root: _pickle(['ref 1', 'ref 2']),
                    ['refs[0]: expected a ref (dict), got str']),
    'list_with_int': (lambda root: _pickle(_refs(root) + [7]),
                      ['refs[6]: expected a ref (dict), got int']),
}

BAD_INSTANCES_FILES = {
    'empty': (lambda root: b'', ['empty file, expected JSON']),
    'truncated':
    (lambda root: _instances(root)[:90], ['line 1 column', 'not valid JSON']),
    'garbage':
    (lambda root: b'\xff\xfe\x00garbage', ['line 1: not UTF-8 text']),
    'not_json': (lambda root: b'images: []\nannotations: []\n',
                 ['line 1 column 1: not valid JSON']),
    'list': (lambda root: b'[]', ['expected a JSON object, got list']),
    'annotations_int': (lambda root: _instances(root, annotations=3),
                        ["'annotations' must be a list, got int"]),
    'image_str': (lambda root: _instances(root, images=['00010.jpg']),
                  ['images[0]: expected an object']),
    'category_without_name':
    (lambda root: _instances(root, categories=[dict(id=0)]),
     ["categories[0]: missing field 'name'"]),
    'no_images': (lambda root: _json(dict(annotations=[], categories=[])),
                  ["missing field 'images'"]),
}


@pytest.mark.parametrize('kind, case', [('refs', c) for c in BAD_REFS_FILES] +
                         [('instances', c) for c in BAD_INSTANCES_FILES])
def test_bad_annotation_files(native_root, kind, case):
    root, _ = native_root
    name, table = ((REFS, BAD_REFS_FILES) if kind == 'refs' else
                   (INSTANCES, BAD_INSTANCES_FILES))
    write, fragments = table[case]
    content = write(root)
    with open(osp.join(root, name), 'wb') as f:
        f.write(content)
    for skip_invalid in (False, True):  # a bad file is never skipped
        with pytest.raises(ValueError) as err:
            build(
                data_root_cfg(root, split='train', skip_invalid=skip_invalid))
        message = str(err.value)
        assert message.startswith(osp.join(str(root), name) + ': '), message
        for fragment in fragments:
            assert fragment in message, (fragment, message)


BAD_IMAGES = {
    'empty': lambda data: b'',
    'text': lambda data: b'not an image\n',
    'garbage': lambda data: bytes(range(256)),
    'truncated_header': lambda data: data[:12],
}


@pytest.mark.parametrize('case', sorted(BAD_IMAGES))
def test_bad_image_files_fail_at_build(native_root, case):
    """Found when the header is read, not by OpenCV in a dataloader."""
    root, _ = native_root
    path = osp.join(str(root), IMG_DIR, '00011.jpg')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(BAD_IMAGES[case](data))
    with pytest.raises(ValueError) as err:
        build(data_root_cfg(root, split='train', pipeline=TEST_PIPELINE))
    message = str(err.value)
    assert f'{REFS}: ref_id 3: cannot read the image header of {path}' \
        in message


def test_lazy_init_and_serialisation(native_root):
    root, _ = native_root
    ds = build(data_root_cfg(root, lazy_init=True, serialize_data=False))
    assert not ds._fully_initialized
    ds.full_init()
    assert len(ds) == 6 and ds[5]['text'] == 'the car above'


# ---- the real RRSIS-D sample -----------------------------------------------


def test_real_sample():
    root = require_real_sample()
    ds = build(
        data_root_cfg(
            root, split='test', test_mode=True, pipeline=TEST_PIPELINE))
    assert len(ds) == 1
    info = ds.get_data_info(0)
    assert info['text'] == 'A airplane at the bottom'
    assert (info['ref_id'], info['ann_id'], info['image_id'],
            info['category_id']) == (11765, 11765, 11765, 2)
    assert ds.metainfo['classes'][info['category_id']] == 'airplane'
    assert info['bbox'] == [148, 603, 375, 788]
    packed = ds[0]
    sample = packed['data_samples']
    assert sample.metainfo['text'] == 'A airplane at the bottom'
    assert sample.metainfo['ori_shape'] == (800, 800)
    assert packed['inputs'].shape == (3, 1024, 1024)
    gt = sample.gt_sem_seg.data[0].numpy()
    assert gt.shape == (800, 800)
    assert set(np.unique(gt)) == {0, 1}
    assert int(gt.sum()) == 10289
    # the stored bbox is the DIOR-RSVG box, not the SAM-made mask's extent;
    # the mask spans x 144..367, y 600..783 (pycocotools toBbox gives
    # [x, y, w, h] = [144, 600, 224, 184] for this RLE)
    ys, xs = np.nonzero(gt)
    assert [xs.min(), ys.min(), xs.max(), ys.max()] == [144, 600, 367, 783]


def test_rrsisd_classes_match_real_ids():
    assert len(RRSISD_CLASSES) == 20
    assert RRSISD_CLASSES[2] == 'airplane'
    assert RRSISD_CLASSES[15] == 'storagetank'
    assert RRSISD_CLASSES[19] == 'windmill'
    assert RRSISDDataset.METAINFO['classes'] is RRSISD_CLASSES


def test_real_sample_categories_match_metainfo():
    root = require_real_sample()
    with open(root / INSTANCES) as f:
        categories = json.load(f)['categories']
    assert [c['id'] for c in categories] == list(range(20))
    assert tuple(c['name'] for c in categories) == \
        RRSISDDataset.METAINFO['classes']


def test_real_sample_unknown_split_lists_test():
    root = require_real_sample()
    with pytest.raises(ValueError, match=r"available splits: \['test'\]"):
        build(data_root_cfg(root, split='train'))
