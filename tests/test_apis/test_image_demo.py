# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""demo/image_demo.py on the real RRSIS-D sample."""
import importlib.util

import cv2
import numpy as np
import pytest
from utils.tiny_refseg import REAL_IMAGE, REAL_TEXT, REPO_ROOT, TINY_CONFIG


@pytest.fixture(scope='module')
def demo():
    """The demo/image_demo.py module."""
    path = REPO_ROOT / 'demo' / 'image_demo.py'
    spec = importlib.util.spec_from_file_location('image_demo', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_on_real_sample(demo, tiny_setup, inferencer, tmp_path):
    if not REAL_IMAGE.is_file():
        pytest.skip(f'real RRSIS-D sample image not found at {REAL_IMAGE}')
    overlay_file = tmp_path / 'out' / 'overlay.png'
    mask_file = tmp_path / 'out' / 'mask.png'
    opacity = 0.5
    out = demo.main([
        str(REAL_IMAGE), REAL_TEXT,
        str(TINY_CONFIG), '--checkpoint', tiny_setup.ckpt, '--device', 'cpu',
        '--out-file',
        str(overlay_file), '--out-mask',
        str(mask_file), '--opacity',
        str(opacity), '--cfg-options',
        f'model.backbone.tokenizer={tiny_setup.tokenizer}'
    ])
    overlay = cv2.imread(str(overlay_file), cv2.IMREAD_UNCHANGED)
    mask_png = cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (800, 800, 3)
    assert mask_png.shape == (800, 800) and mask_png.dtype == np.uint8
    assert set(np.unique(mask_png)) <= {0, 255}
    # the same mask as the inferencer's for this image and expression
    expected = inferencer(str(REAL_IMAGE), REAL_TEXT)['masks'][0]
    np.testing.assert_array_equal(mask_png, expected * 255)
    np.testing.assert_array_equal(out['mask'], expected)

    # alignment: below the banner, pixels away from the mask are the
    # image's, pixels well inside it are the blend with the mask colour
    image = cv2.imread(str(REAL_IMAGE))  # BGR, as the PNG is read
    mask = expected.astype(np.uint8)
    kernel = np.ones((7, 7), np.uint8)
    outside = cv2.dilate(mask, kernel) == 0
    # pixels beyond the border count as inside: no contour along the border
    inside = cv2.erode(mask, kernel, borderValue=1) == 1
    body = np.zeros_like(mask, dtype=bool)
    body[120:] = True  # the banner of one text line is < 120 px high
    assert (outside & body).sum() > 1000 and (inside & body).sum() > 1000
    np.testing.assert_array_equal(overlay[outside & body],
                                  image[outside & body])
    color_bgr = np.array([48, 48, 255], np.float32)  # pred (255, 48, 48)
    blend = np.round((1 - opacity) * image.astype(np.float32) +
                     opacity * color_bgr).astype(np.uint8)
    np.testing.assert_array_equal(overlay[inside & body], blend[inside & body])
    # the banner darkens the top rows and carries white text
    top = overlay[:20].astype(int)
    assert (top.mean() < image[:20].mean())
    assert (overlay[:60] >= 200).all(axis=2).sum() > 100


#: Bad image files: name, content (None: no file), error, message.
BAD_IMAGES = [
    ('empty.png', b'', ValueError,
     r"Image is an empty file \(0 bytes\): '.*empty\.png'"),
    ('notes.png', b'the ship on the left\n', ValueError,
     r"Image cannot be decoded as an image: '.*notes\.png' \(21 bytes"),
    ('corrupt.jpg', b'\xff\xd8\xff\xe0' + bytes(range(256)) * 4, ValueError,
     r"Image cannot be decoded as an image: '.*corrupt\.jpg'"),
    ('missing.jpg', None, FileNotFoundError,
     r"Image not found: '.*missing\.jpg'"),
]


@pytest.mark.parametrize(
    'name,content,error,message',
    BAD_IMAGES,
    ids=[case[0] for case in BAD_IMAGES])
def test_demo_bad_image(demo, tiny_setup, tmp_path, monkeypatch, name, content,
                        error, message):
    image = tmp_path / name
    if content is not None:
        image.write_bytes(content)

    def build_model(*args, **kwargs):
        raise AssertionError('the model was built for a bad image')

    # the image is checked before the model is built
    monkeypatch.setattr(demo, 'RefSegInferencer', build_model)
    with pytest.raises(error, match=message):
        demo.main([
            str(image), 'the ship',
            str(TINY_CONFIG), '--checkpoint', tiny_setup.ckpt, '--device',
            'cpu', '--out-file',
            str(tmp_path / 'overlay.png'), '--out-mask',
            str(tmp_path / 'mask.png')
        ])
    assert not (tmp_path / 'overlay.png').exists()


def test_demo_rejects_empty_expression(demo, capsys):
    with pytest.raises(SystemExit) as exc:
        demo.parse_args(['a.jpg', '  ', 'c.py', '--checkpoint', 'k.pth'])
    assert exc.value.code == 2
    assert 'the referring expression is empty' in capsys.readouterr().err


def test_demo_help(demo, capsys):
    with pytest.raises(SystemExit) as exc:
        demo.parse_args(['--help'])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ('--checkpoint', '--device', '--out-file', '--out-mask',
                   '--opacity', 'referring expression'):
        assert option in text


def test_demo_rejects_bad_opacity(demo):
    with pytest.raises(SystemExit):
        demo.parse_args([
            'a.jpg', 'x', 'c.py', '--checkpoint', 'k.pth', '--opacity', '1.5'
        ])
