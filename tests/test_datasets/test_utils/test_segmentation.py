# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RLE / polygon validation and decoding (mmrsrefseg.datasets.utils)."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from utils.refseg_data import encode_rle, rect_mask

from mmrsrefseg.datasets.utils import check_segmentation, decode_segmentation

WHERE = 'ann.json: ref_id 7'


def _masks():
    """Masks covering short and long runs, empty / full and odd sizes."""
    rng = np.random.default_rng(0)
    big = rect_mask((800, 800), (148, 603, 375, 788))
    big[650:700, 200:260] = 0
    return [
        np.zeros((1, 1), np.uint8),
        np.ones((1, 1), np.uint8),
        np.zeros((7, 5), np.uint8),
        np.ones((7, 5), np.uint8),
        (rng.random((37, 53)) > 0.5).astype(np.uint8),
        (rng.random((64, 64)) > 0.97).astype(np.uint8),
        big,
    ]


def test_compressed_rle_hand_example():
    # 2x2 mask [[0, 1], [1, 1]], column-major pixels 0, 1, 1, 1 -> runs
    # [1, 3]; each count < 16 is one character chr(48 + count).
    mask = np.array([[0, 1], [1, 1]], np.uint8)
    rle = mask_utils.encode(np.asfortranarray(mask))
    assert rle['counts'] == b'13'
    assert check_segmentation(dict(size=[2, 2], counts=b'13'), WHERE) == (2, 2)
    # runs [1, 2] cover 3 of the 4 pixels, [1, 4] 5 of them
    for short_or_long in (b'12', b'14'):
        with pytest.raises(ValueError, match='size 2x2 needs 4 pixels'):
            check_segmentation(dict(size=[2, 2], counts=short_or_long), WHERE)


@pytest.mark.parametrize('index', range(7))
def test_compressed_rle_parity_with_pycocotools(index):
    """Every pycocotools encoding is accepted; every cut of it is rejected.

    A cut string decodes in pycocotools to a mask whose tail is left
    uninitialised (or its last count ends inside a continuation): the check
    must refuse each one.
    """
    mask = _masks()[index]
    rle = mask_utils.encode(np.asfortranarray(mask))
    counts = rle['counts']
    assert check_segmentation(
        dict(size=list(mask.shape), counts=counts), WHERE) == mask.shape
    np.testing.assert_array_equal(
        decode_segmentation(
            dict(size=list(mask.shape), counts=counts), 1, 1, WHERE), mask)
    assert mask.sum() == mask_utils.area(rle)
    for cut in range(len(counts)):
        with pytest.raises(ValueError, match='malformed RLE') as err:
            check_segmentation(
                dict(size=list(mask.shape), counts=counts[:cut]), WHERE)
        assert WHERE in str(err.value)


def test_check_segmentation_valid_forms():
    mask = rect_mask((24, 32), (2, 3, 9, 12))
    rle = encode_rle(mask)
    assert check_segmentation(rle, WHERE) == (24, 32)
    assert check_segmentation([rle], WHERE) == (24, 32)
    assert check_segmentation(
        dict(size=rle['size'], counts=rle['counts'].encode()),
        WHERE) == (24, 32)
    # uncompressed RLE: column-major runs of the 24x32 box mask
    # columns 0-1 empty (48 px) + 3 rows above the box in column 2 = 51
    runs = [51] + [10, 14] * 7 + [10]
    runs.append(24 * 32 - sum(runs))
    assert check_segmentation(dict(size=[24, 32], counts=runs),
                              WHERE) == (24, 32)
    assert check_segmentation([[2, 3, 10, 3, 10, 13, 2, 13]], WHERE) is None


@pytest.mark.parametrize(
    'segmentation, message',
    [
        (dict(counts='13'), "missing 'size'"),
        (dict(size=[2, 2]), "missing 'counts'"),
        (dict(size='2x2', counts='13'), 'size must be two positive ints'),
        (dict(size=[2, 2, 1], counts='13'), 'size must be two positive ints'),
        (dict(size=[0, 2], counts=''), 'size must be two positive ints'),
        (dict(size=[2, 2], counts=13), 'counts must be a str'),
        (dict(size=[2, 2], counts='1 3'), "outside '0'..'o'"),
        (dict(size=[2, 2], counts='1~'), "outside '0'..'o'"),
        # '1' then a count whose last character has the continuation bit
        (dict(size=[2, 2], counts='1P'), 'truncated'),
        (dict(size=[2, 2], counts='12'), 'run lengths add up to fewer'),
        (dict(size=[2, 2], counts='14'), 'run lengths add up to more'),
        (dict(size=[2, 2], counts=''), 'empty counts string'),
        (dict(size=[2, 2], counts=[1, 2]), 'add up to 3 pixels'),
        (dict(size=[2, 2], counts=[1, -1, 4]), 'negative run length'),
        (dict(size=[2, 2], counts=[1.0, 3]), 'must be ints'),
        ([], 'malformed segmentation'),
        ('13', 'malformed segmentation'),
        ([[1, 2, 3, 4, 5]], 'malformed segmentation'),
        ([dict(size=[2, 2], counts='13'), [0, 0, 1, 0, 1, 1]
          ], 'malformed segmentation'),
        ([dict(size=[2, 2], counts='13'),
          dict(size=[1, 4], counts='13')], 'different sizes'),
    ])
def test_check_segmentation_errors(segmentation, message):
    with pytest.raises(ValueError) as err:
        check_segmentation(segmentation, WHERE)
    assert WHERE in str(err.value)
    assert message in str(err.value)


def test_check_segmentation_truncated_real_length_string():
    mask = _masks()[-1]
    counts = encode_rle(mask)['counts']
    cut = counts[:len(counts) // 2]
    with pytest.raises(ValueError, match='malformed RLE'):
        check_segmentation(dict(size=[800, 800], counts=cut), WHERE)


def test_decode_segmentation_forms():
    box_a = rect_mask((24, 32), (2, 3, 9, 12))
    box_b = rect_mask((24, 32), (20, 5, 29, 20))
    rle_a, rle_b = encode_rle(box_a), encode_rle(box_b)
    runs = [51] + [10, 14] * 7 + [10]
    runs.append(24 * 32 - sum(runs))
    forms = [
        rle_a, [rle_a],
        dict(size=[24, 32], counts=rle_a['counts'].encode()),
        dict(size=[24, 32], counts=runs), [dict(size=[24, 32], counts=runs)]
    ]
    for form in forms:
        out = decode_segmentation(form, 99, 99, WHERE)
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, box_a)
    union = decode_segmentation([rle_a, rle_b], 99, 99, WHERE)
    np.testing.assert_array_equal(union, box_a | box_b)
    assert union.sum() == 8 * 10 + 10 * 16


def test_decode_polygons_at_image_size():
    # an axis-aligned square with integer corners (2, 3)-(10, 13) covers the
    # 8 x 10 pixels whose centres lie inside it: columns 2..9, rows 3..12
    out = decode_segmentation([[2, 3, 10, 3, 10, 13, 2, 13]], 24, 32, WHERE)
    assert out.shape == (24, 32) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rect_mask((24, 32), (2, 3, 9, 12)))
    two = decode_segmentation(
        [[2, 3, 10, 3, 10, 13, 2, 13], [20, 0, 22, 0, 22, 2, 20, 2]], 24, 32,
        WHERE)
    assert two.sum() == 80 + 4


def test_decode_errors_name_the_sample():
    # input that skipped the dataset's check: pycocotools' / the dict
    # access errors are re-raised naming the sample
    with pytest.raises(ValueError, match=f'{WHERE}: cannot decode.*size'):
        decode_segmentation([dict(counts='13')], 2, 2, WHERE)
    with pytest.raises(ValueError, match=f'{WHERE}: cannot decode.*Invalid'):
        decode_segmentation(dict(size=[2, 2], counts='14'), 2, 2, WHERE)
