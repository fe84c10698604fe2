# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegRSDataset / RISBenchDataset on fixtures in the native layouts.

The fixtures are real TIFF files (see ``native_layout_utils``): RGB images
written by Pillow and read by OpenCV, grey-level masks written by OpenCV and
read by Pillow.
"""
import os
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS
from utils.native_layouts import (REFSEGRS_SAMPLES, RISBENCH_SAMPLES,
                                  make_refsegrs, make_risbench, rect_mask,
                                  write_mask)
from utils.refseg_data import META_KEYS

from mmrsrefseg.datasets import (LoadRefSegAnnotations, RefSegRSDataset,
                                 RISBenchDataset)

TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRefSegAnnotations'),
    dict(type='Resize', scale=(40, 48), keep_ratio=False),
    dict(type='PackSegInputs', meta_keys=META_KEYS)
]
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(40, 48), keep_ratio=False),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackSegInputs', meta_keys=META_KEYS)
]


@pytest.fixture
def refsegrs(tmp_path):
    root = tmp_path / 'RefSegRS'
    return root, make_refsegrs(root, REFSEGRS_SAMPLES)


@pytest.fixture
def risbench(tmp_path):
    root = tmp_path / 'RISBench_dataset'
    return root, make_risbench(root, RISBENCH_SAMPLES)


def _refsegrs_cfg(root, split='train', **kwargs):
    return dict(
        type='RefSegRSDataset',
        data_root=str(root),
        ann_file=f'output_phrase_{split}.txt',
        **kwargs)


def _risbench_cfg(root, split='train', **kwargs):
    return dict(
        type='RISBenchDataset',
        data_root=str(root),
        ann_file=f'output_phrase_{split}.txt',
        **kwargs)


def _edit_lines(path, fn):
    lines = Path(path).read_text().splitlines()
    Path(path).write_text('\n'.join(fn(lines)) + '\n')


def test_registered():
    assert DATASETS.get('RefSegRSDataset') is RefSegRSDataset
    assert DATASETS.get('RISBenchDataset') is RISBenchDataset


def test_refsegrs_data_list(refsegrs):
    root, _ = refsegrs
    ds = DATASETS.build(_refsegrs_cfg(root))
    assert len(ds) == 4
    assert ds.metainfo == dict(classes=(), palette=[])
    expected = [(0, '0', 'the long road on the left', (24, 32)),
                (1, '1', 'a red car', (20, 30)),
                (2, '1', 'red car near the building', (20, 30)),
                (3, '2', 'building', (16, 16))]
    for i, (line, ident, text, hw) in enumerate(expected):
        assert ds.get_data_info(i) == dict(
            img_path=str(root / 'images' / f'{ident}.tif'),
            seg_map_path=str(root / 'masks' / f'{ident}.tif'),
            text=text,
            ref_id=line,
            sent_id=line,
            ann_id=int(ident),
            image_id=int(ident),
            category_id=None,
            ori_height=hw[0],
            ori_width=hw[1],
            seg_fields=[],
            reduce_zero_label=False,
            sample_idx=i)
    assert ds.num_invalid == 0 and ds.num_size_mismatch == 0
    # every text_mode gives one sample per line
    for mode in ('select_first', 'random', 'concat'):
        other = DATASETS.build(_refsegrs_cfg(root, text_mode=mode))
        assert [other[i]['text'] for i in range(len(other))] == \
            [e[2] for e in expected]


def test_refsegrs_pipelines_read_tiff(refsegrs):
    root, written = refsegrs
    train = DATASETS.build(_refsegrs_cfg(root, pipeline=TRAIN_PIPELINE))
    test = DATASETS.build(
        _refsegrs_cfg(
            root, split='test', pipeline=TEST_PIPELINE, test_mode=True))
    # without Resize: exact pixels of the TIFF image (BGR) and mask
    load = DATASETS.build(
        _refsegrs_cfg(
            root,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadRefSegAnnotations')
            ]))
    for i, ident in enumerate(['0', '1', '1', '2']):
        out = load[i]
        np.testing.assert_array_equal(
            out['img'], written['images'][f'{ident}.tif'][..., ::-1])
        np.testing.assert_array_equal(out['gt_seg_map'],
                                      written['masks'][f'{ident}.tif'])
        assert out['gt_seg_map'].dtype == np.uint8
    packed = train[1]
    assert packed['inputs'].shape == (3, 48, 40)
    gt = packed['data_samples'].gt_sem_seg.data
    assert gt.shape == (1, 48, 40)
    # rect x 10..17 of 30, y 4..9 of 20, nearest-resized to 40 x 48
    rows = np.floor(np.arange(48) * 20 / 48).astype(int)
    cols = np.floor(np.arange(40) * 30 / 40).astype(int)
    expect = written['masks']['1.tif'][rows][:, cols]
    np.testing.assert_array_equal(gt[0].numpy(), expect)
    meta = packed['data_samples'].metainfo
    assert meta['text'] == 'a red car'
    assert meta['category_id'] is None
    assert meta['seg_map_path'].endswith('masks/1.tif')
    # test order: the mask stays at the original 30 x 20
    packed = test[0]
    assert packed['inputs'].shape == (3, 48, 40)
    gt = packed['data_samples'].gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(gt, rect_mask((30, 20), (2, 20, 17, 29)))
    assert int(gt.sum()) == 16 * 10
    assert packed['data_samples'].metainfo['ori_shape'] == (30, 20)


def test_risbench_data_list_and_pipeline(risbench):
    root, written = risbench
    ds = DATASETS.build(_risbench_cfg(root, pipeline=TEST_PIPELINE))
    assert len(ds) == 3
    infos = [ds.get_data_info(i) for i in range(3)]
    assert [info['text'] for info in infos] == [
        'the large ship at the top', 'a storage tank', 'ship in the upper part'
    ]
    assert [os.path.basename(info['img_path']) for info in infos] == \
        ['P0003_0001.tif', '00017.png', 'P0003_0001.tif']
    assert [info['seg_map_path'] for info in infos] == [
        str(root / 'mask' / name)
        for name in ('P0003_0001.tif', '00017.png', 'P0003_0001.tif')
    ]
    assert all(
        os.path.dirname(info['img_path']) == str(root / 'img_rgb')
        for info in infos)
    # image ids: first appearance of the file name; ref ids: line index
    assert [info['image_id'] for info in infos] == [0, 1, 0]
    assert [info['ann_id'] for info in infos] == [0, 1, 0]
    assert [info['ref_id'] for info in infos] == [0, 1, 2]
    assert all(info['category_id'] is None for info in infos)
    assert [(info['ori_height'], info['ori_width']) for info in infos] == \
        [(24, 32), (16, 20), (24, 32)]
    for i, name in enumerate(['P0003_0001.tif', '00017.png']):
        gt = ds[i]['data_samples'].gt_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(gt, written['masks'][name])
    assert int(written['masks']['P0003_0001.tif'].sum()) == 24 * 7
    val = DATASETS.build(_risbench_cfg(root, split='val'))
    assert val.get_data_info(0)['image_id'] == 0
    assert val.get_data_info(0)['text'] == 'the bridge'


@pytest.mark.parametrize(
    'case',
    ['missing_image', 'missing_mask', 'size', 'empty', 'bad_id', 'header'])
def test_refsegrs_errors_name_file_and_line(refsegrs, case):
    root, _ = refsegrs
    ann = root / 'output_phrase_train.txt'
    where = f'{ann}: line 4 (id 2)'
    if case == 'missing_image':
        os.remove(root / 'images' / '2.tif')
        err, parts = FileNotFoundError, [
            where, 'image file not found',
            str(root / 'images' / '2.tif')
        ]
    elif case == 'missing_mask':
        os.remove(root / 'masks' / '2.tif')
        err, parts = FileNotFoundError, [
            where, 'mask file not found',
            str(root / 'masks' / '2.tif')
        ]
    elif case == 'size':
        write_mask(root / 'masks' / '2.tif', np.zeros((16, 17), np.uint8))
        err, parts = ValueError, [
            where, f'mask {root / "masks" / "2.tif"} size (h, w) (16, 17)',
            'size (16, 16) of image', 'size_tolerance=0'
        ]
    elif case == 'empty':
        _edit_lines(ann, lambda lines: lines[:3] + ['2   '] + lines[4:])
        err, parts = ValueError, [where, 'empty referring expression']
    elif case == 'bad_id':
        _edit_lines(ann, lambda lines: lines[:3] + ['2a building'])
        where = f'{ann}: line 4 (id 2a)'
        err, parts = ValueError, [where, "non-negative integer", "'2a'"]
    else:
        (root / 'images' / '2.tif').write_bytes(b'not a tiff')
        err, parts = ValueError, [where, 'cannot read the image header']
    with pytest.raises(err) as info:
        DATASETS.build(_refsegrs_cfg(root))
    for part in parts:
        assert part in str(info.value)


def test_refsegrs_ids_keep_their_identity(refsegrs):
    """``007`` and ``7`` are two files; they cannot share image_id 7."""
    root, _ = refsegrs
    for name in ('007.tif', '7.tif'):
        for folder in ('images', 'masks'):
            (root / folder / name).write_bytes(
                (root / folder / '0.tif').read_bytes())
    ann = root / 'output_phrase_train.txt'
    ann.write_text('0 road\n007 a road\n\n7 a road\n')
    for skip_invalid in (False, True):  # a file-level error
        with pytest.raises(ValueError) as err:
            DATASETS.build(_refsegrs_cfg(root, skip_invalid=skip_invalid))
        assert f'{ann}: line 2 (id 007) and line 4 (id 7) name two files ' \
            'with the same id 7' in str(err.value)
    # one spelling alone keeps its number
    ann.write_text('0 road\n007 a road\n')
    ds = DATASETS.build(_refsegrs_cfg(root))
    assert [ds.get_data_info(i)['image_id'] for i in range(2)] == [0, 7]
    assert ds.get_data_info(1)['img_path'].endswith('images/007.tif')


def _latin1(root):
    return b'0 road\n1 a red car\n2 caf\xe9 building\n'


# (phrase file content given the root, exception, fragments after the file)
BAD_PHRASE_FILES = {
    'not_utf8':
    (_latin1, ValueError, [': line 3: not UTF-8 text', 'at byte 24']),
    'utf16': (lambda root: '0 road\n'.encode('utf-16'), ValueError,
              [': line 1: not UTF-8 text']),
    'garbage': (lambda root: bytes(range(256)), ValueError,
                [': line ', ': not UTF-8 text']),
    'empty': (lambda root: b'', ValueError, [': no valid sample']),
    'truncated': (lambda root: b'0 road\n1 a red car\n2', ValueError,
                  [": line 3 (id 2): missing or empty referring expression"]),
    'wrong_type_id':
    (lambda root: b'0 road\nP0003.tif a car\n', ValueError,
     [": line 2 (id P0003.tif): a RefSegRS id is a "
      'non-negative integer']),
}


@pytest.mark.parametrize('case', sorted(BAD_PHRASE_FILES))
def test_bad_phrase_files(refsegrs, case):
    root, _ = refsegrs
    write, exc, fragments = BAD_PHRASE_FILES[case]
    ann = root / 'output_phrase_train.txt'
    ann.write_bytes(write(root))
    with pytest.raises(exc) as err:
        DATASETS.build(_refsegrs_cfg(root))
    message = str(err.value)
    assert message.startswith(str(ann)), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# bad image / mask file content (the valid file is given)
BAD_IMAGE_FILES = {
    'empty': lambda data: b'',
    'text': lambda data: b'a mask, not an image\n',
    'garbage': lambda data: bytes(range(256)),
    'truncated_header': lambda data: data[:6],
}


@pytest.mark.parametrize('kind', ['image', 'mask'])
@pytest.mark.parametrize('case', sorted(BAD_IMAGE_FILES))
def test_bad_image_and_mask_files_fail_at_build(refsegrs, kind, case):
    """Found when the dataset reads the headers, not by the pipeline."""
    root, _ = refsegrs
    path = root / ('images' if kind == 'image' else 'masks') / '2.tif'
    path.write_bytes(BAD_IMAGE_FILES[case](path.read_bytes()))
    with pytest.raises(ValueError) as err:
        DATASETS.build(_refsegrs_cfg(root))
    assert f'output_phrase_train.txt: line 4 (id 2): cannot read the ' \
        f'{kind} header of {path}' in str(err.value)


def test_mask_file_cut_after_its_header_fails_when_loaded(refsegrs):
    """Only the header is read at build; the pixels when the mask loads."""
    from PIL import Image
    root, written = refsegrs
    path = root / 'masks' / '2.tif'
    # an uncompressed TIFF written by Pillow: its directory precedes the
    # pixels, so the header survives the cut
    Image.fromarray(written['masks']['2.tif'] * 255).save(
        str(path), format='TIFF')
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 40])
    ds = DATASETS.build(
        _refsegrs_cfg(
            root,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadRefSegAnnotations')
            ]))
    with pytest.raises(ValueError) as err:
        ds[3]
    assert f'cannot decode the mask file {path}' in str(err.value)
    assert '(ref_id 3)' in str(err.value)


def test_missing_phrase_file(refsegrs):
    root, _ = refsegrs
    with pytest.raises(FileNotFoundError, match='output_phrase_trainval'):
        DATASETS.build(_refsegrs_cfg(root, split='trainval'))


def test_risbench_error_names_file(risbench):
    root, _ = risbench
    os.remove(root / 'mask' / '00017.png')
    with pytest.raises(FileNotFoundError) as info:
        DATASETS.build(_risbench_cfg(root))
    assert f'output_phrase_train.txt: line 2 (file 00017.png): mask file ' \
        f'not found: {root / "mask" / "00017.png"}' in str(info.value)


def test_skip_invalid_counts(refsegrs):
    root, _ = refsegrs
    ann = root / 'output_phrase_train.txt'
    # line 2: no words; line 5 (blank line kept): missing image
    _edit_lines(
        ann, lambda lines: [lines[0], '1', lines[2], lines[3], '', '99 gone'])
    with pytest.raises(ValueError, match='line 2 .id 1.'):
        DATASETS.build(_refsegrs_cfg(root))
    with mock.patch(
            'mmrsrefseg.datasets.base_refseg_dataset.print_log') as log:
        ds = DATASETS.build(_refsegrs_cfg(root, skip_invalid=True))
    logged = '\n'.join(call.args[0] for call in log.call_args_list)
    assert ds.num_invalid == 2
    assert [ds[i]['ref_id'] for i in range(len(ds))] == [0, 2, 3]
    assert [ds[i]['text'] for i in range(len(ds))] == [
        'the long road on the left', 'red car near the building', 'building'
    ]
    assert f'{ann}: skipped 2 invalid refs, kept 3 samples' in logged
    assert f'{ann}: line 2 (id 1): missing or empty referring ' \
        "expression ''" in logged
    assert f'{ann}: line 6 (id 99): image file not found: ' \
        f'{root / "images" / "99.tif"}' in logged
    # nothing valid at all
    (root / 'output_phrase_val.txt').write_text('7\n\n')
    with pytest.raises(ValueError, match='no valid sample'):
        DATASETS.build(_refsegrs_cfg(root, split='val', skip_invalid=True))


def test_size_tolerance_resizes_mask(refsegrs):
    root, _ = refsegrs
    # mask 18 x 18 on the 16 x 16 image 2
    write_mask(root / 'masks' / '2.tif', rect_mask((18, 18), (0, 0, 8, 17)))
    ds = DATASETS.build(
        _refsegrs_cfg(
            root,
            size_tolerance=2,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadRefSegAnnotations')
            ]))
    assert ds.num_size_mismatch == 1
    gt = ds[3]['gt_seg_map']
    assert gt.shape == (16, 16)
    # nearest: dst x <- floor(x * 18 / 16) <= 8  <=>  x <= 7
    expect = np.zeros((16, 16), np.uint8)
    expect[:, :8] = 1
    np.testing.assert_array_equal(gt, expect)


def test_bom_crlf_and_blank_lines(tmp_path):
    root = tmp_path / 'r'
    make_refsegrs(root, REFSEGRS_SAMPLES)
    (root / 'output_phrase_train.txt').write_bytes(
        '\ufeff0 road\r\n\r\n2  a  building \r\n'.encode('utf-8'))
    ds = DATASETS.build(_refsegrs_cfg(root))
    assert [(ds[i]['ref_id'], ds[i]['image_id'], ds[i]['text'])
            for i in range(len(ds))] == [(0, 0, 'road'), (2, 2, 'a building')]


@pytest.mark.parametrize('compression',
                         [None, 'tiff_lzw', 'tiff_deflate', 'packbits'])
def test_mask_reader_tiff_compressions(tmp_path, compression):
    from PIL import Image
    mask = np.zeros((9, 7), np.uint8)
    mask[2:5, 1:6] = 255
    mask[8, 6] = 1  # any value > 0 is the object
    path = tmp_path / 'm.tif'
    Image.fromarray(mask).save(
        str(path), format='TIFF', compression=compression)
    load = LoadRefSegAnnotations()
    out = load(dict(seg_map_path=str(path), ori_shape=(9, 7), seg_fields=[]))
    np.testing.assert_array_equal(out['gt_seg_map'], (mask > 0))
    assert out['gt_seg_map'].dtype == np.uint8
    assert int(out['gt_seg_map'].sum()) == 16
    # a threshold: only 255 is the object
    out = LoadRefSegAnnotations(mask_threshold=127)(
        dict(seg_map_path=str(path), ori_shape=(9, 7)))
    assert int(out['gt_seg_map'].sum()) == 15


def test_mask_reader_modes(tmp_path):
    from PIL import Image
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 2:7] = 1
    expect = mask.copy()
    load = LoadRefSegAnnotations()

    def gt(img, name):
        path = tmp_path / name
        img.save(str(path))
        return load(dict(seg_map_path=str(path),
                         ori_shape=(6, 8)))['gt_seg_map']

    np.testing.assert_array_equal(
        gt(Image.fromarray(mask.astype(bool)), 'one_bit.tif'), expect)
    palette = Image.frombytes('P', (8, 6), (mask * 2).tobytes())
    palette.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0])
    np.testing.assert_array_equal(gt(palette, 'palette.tif'), expect)
    wide = Image.fromarray(mask.astype(np.uint16) * 1000)
    np.testing.assert_array_equal(gt(wide, 'sixteen.tif'), expect)
    grey_rgb = np.repeat(mask[..., None] * 255, 3, axis=2)
    np.testing.assert_array_equal(
        gt(Image.fromarray(grey_rgb), 'rgb.tif'), expect)
    rgba = np.concatenate([grey_rgb, np.full((6, 8, 1), 255, np.uint8)], 2)
    np.testing.assert_array_equal(
        gt(Image.fromarray(rgba), 'rgba.tif'), expect)
    colour = grey_rgb.copy()
    colour[0, 0] = (255, 0, 0)
    with pytest.raises(ValueError, match='colour.tif has 3 channels'):
        gt(Image.fromarray(colour), 'colour.tif')
    with pytest.raises(FileNotFoundError, match='x.tif .ref_id 4.: mask file'):
        load(
            dict(
                seg_map_path=str(tmp_path / 'nope.tif'),
                ori_shape=(6, 8),
                img_path='x.tif',
                ref_id=4))
    with pytest.raises(KeyError, match="'segmentation'.*'seg_map_path'"):
        load(dict(ori_shape=(6, 8), img_path='x.tif', ref_id=4))


def test_mask_file_size_checked_when_loading(tmp_path):
    path = tmp_path / 'm.tif'
    write_mask(path, rect_mask((10, 10), (0, 0, 4, 4)))
    with pytest.raises(
            ValueError,
            match=r'\(10, 10\) differs from the '
            r'image size \(30, 10\)'):
        LoadRefSegAnnotations()(
            dict(seg_map_path=str(path), ori_shape=(30, 10)))


def test_image_reader_parity_opencv_pillow(refsegrs):
    """OpenCV (pipeline) and Pillow (header / masks) agree on the TIFFs."""
    from PIL import Image
    root, written = refsegrs
    path = root / 'images' / '0.tif'
    with Image.open(path) as img:
        assert img.format == 'TIFF' and img.mode == 'RGB'
        assert img.info.get('compression') == 'tiff_lzw'
        np.testing.assert_array_equal(
            np.asarray(img), written['images']['0.tif'])
    np.testing.assert_array_equal(
        cv2.imread(str(path))[..., ::-1], written['images']['0.tif'])
    with Image.open(root / 'masks' / '0.tif') as img:
        assert img.format == 'TIFF' and img.mode == 'L'
        assert set(np.unique(np.asarray(img))) == {0, 255}
