# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegInferencer: parity with test_step, batching, inputs, errors."""
import copy

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample
from utils.tiny_refseg import REAL_IMAGE, REAL_TEXT

from mmrsrefseg.apis import RefSegInferencer


@pytest.fixture(scope='module')
def test_samples(tiny_setup):
    """The synthetic test split through the config's test pipeline."""
    dataset = DATASETS.build(tiny_setup.cfg.test_dataloader.dataset)
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope='module')
def reference_preds(tiny_setup, test_samples):
    """Predictions of an independently loaded model's ``test_step``."""
    model = MODELS.build(tiny_setup.cfg.model)
    load_checkpoint(model, tiny_setup.ckpt, map_location='cpu', strict=True)
    model.eval()
    with torch.no_grad():
        return [
            model.test_step(pseudo_collate([sample]))[0]
            for sample in test_samples
        ]


def test_parity_with_test_step(inferencer, test_samples, reference_preds):
    paths = [s['data_samples'].img_path for s in test_samples]
    texts = [s['data_samples'].metainfo['text'] for s in test_samples]
    assert len(paths) >= 4 and len(set(texts)) > 1
    result = inferencer(paths, texts, batch_size=1)
    assert set(result) == {'masks', 'probabilities'}
    assert len(result['masks']) == len(paths)
    for path, sample, ref, mask, prob in zip(paths, test_samples,
                                             reference_preds, result['masks'],
                                             result['probabilities']):
        h, w = cv2.imread(path).shape[:2]
        # the original image size, which is also the ground truth's
        assert mask.shape == prob.shape == (h, w)
        assert sample['data_samples'].gt_sem_seg.shape == (h, w)
        assert mask.dtype == np.uint8 and prob.dtype == np.float32
        assert set(np.unique(mask)) <= {0, 1}
        assert 0.0 <= prob.min() and prob.max() <= 1.0
        np.testing.assert_array_equal(
            mask, ref.pred_sem_seg.data[0].numpy().astype(np.uint8))
        np.testing.assert_allclose(
            prob, ref.seg_logits.data[0].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(mask, (prob > 0.5).astype(np.uint8))


def test_batched_equals_single(inferencer, test_samples):
    paths = [s['data_samples'].img_path for s in test_samples]
    texts = [s['data_samples'].metainfo['text'] for s in test_samples]
    single = inferencer(paths, texts, batch_size=1)
    batched = inferencer(paths, texts, batch_size=2)
    for a, b in zip(single['masks'], batched['masks']):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(single['probabilities'], batched['probabilities']):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_several_expressions_for_one_image(inferencer, test_samples):
    path = test_samples[0]['data_samples'].img_path
    texts = ['the red storage tank', 'the vehicle on the left', 'a ship']
    result = inferencer(path, texts, batch_size=2, return_datasamples=True)
    assert len(result['masks']) == 3
    assert [p.metainfo['text'] for p in result['predictions']] == texts
    assert all(isinstance(p, SegDataSample) for p in result['predictions'])
    for text, mask, prob in zip(texts, result['masks'],
                                result['probabilities']):
        one = inferencer(path, text)
        np.testing.assert_array_equal(mask, one['masks'][0])
        np.testing.assert_allclose(
            prob, one['probabilities'][0], rtol=0, atol=1e-5)
    # the expression reaches the model: different texts, different outputs
    assert np.abs(result['probabilities'][0] -
                  result['probabilities'][1]).max() > 1e-4


def test_rgb_array_equals_file(inferencer, test_samples):
    path = test_samples[0]['data_samples'].img_path
    text = test_samples[0]['data_samples'].metainfo['text']
    from_file = inferencer(path, text)
    rgb = mmcv.imread(path, channel_order='rgb')
    from_rgb = inferencer(rgb, text)
    np.testing.assert_array_equal(from_rgb['masks'][0], from_file['masks'][0])
    np.testing.assert_allclose(
        from_rgb['probabilities'][0],
        from_file['probabilities'][0],
        rtol=0,
        atol=1e-6)
    # the same pixels in BGR order are a different image for the model
    from_bgr = inferencer(np.ascontiguousarray(rgb[..., ::-1]), text)
    assert np.abs(from_bgr['probabilities'][0] -
                  from_file['probabilities'][0]).max() > 1e-4


def test_real_sample_original_size(inferencer):
    if not REAL_IMAGE.is_file():
        pytest.skip(f'real RRSIS-D sample image not found at {REAL_IMAGE}')
    result = inferencer(str(REAL_IMAGE), REAL_TEXT)
    assert result['masks'][0].shape == (800, 800)
    assert result['probabilities'][0].shape == (800, 800)


def test_out_dir_files(inferencer, test_samples, tmp_path):
    path = test_samples[0]['data_samples'].img_path
    stem = path.replace('\\', '/').rsplit('/', 1)[-1].rsplit('.', 1)[0]
    result = inferencer(
        path, ['the red storage tank', 'a ship'],
        out_dir=str(tmp_path),
        return_vis=True)
    image = cv2.imread(path)
    for i in range(2):
        mask_png = cv2.imread(
            str(tmp_path / 'pred' / f'{stem}_{i}.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask_png, result['masks'][i] * 255)
        vis_png = cv2.imread(str(tmp_path / 'vis' / f'{stem}_{i}.png'))
        assert vis_png.shape == image.shape
        np.testing.assert_array_equal(vis_png[..., ::-1],
                                      result['visualization'][i])


def test_input_errors(inferencer, test_samples, tmp_path):
    path = test_samples[0]['data_samples'].img_path
    missing = str(tmp_path / 'missing.jpg')
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        inferencer(missing, 'the ship')
    with pytest.raises(FileNotFoundError, match=r'Image #1 not found'):
        inferencer([path, missing], ['a', 'b'])
    for empty in ('', '   '):
        with pytest.raises(ValueError, match='#0 is empty'):
            inferencer(path, empty)
    with pytest.raises(ValueError, match='#1 is empty'):
        inferencer(path, ['the ship', ''])
    with pytest.raises(ValueError, match='2 images and 3 referring'):
        inferencer([path, path], ['a', 'b', 'c'])
    with pytest.raises(ValueError, match='single referring expression'):
        inferencer([path, path], 'the ship')
    with pytest.raises(ValueError, match='No image'):
        inferencer([], [])
    with pytest.raises(ValueError, match='No referring expression'):
        inferencer(path, [])
    with pytest.raises(ValueError, match='RGB uint8 array'):
        inferencer(np.zeros((8, 8), np.uint8), 'the ship')
    with pytest.raises(ValueError, match='RGB uint8 array'):
        inferencer(np.zeros((8, 8, 3), np.float32), 'the ship')
    with pytest.raises(TypeError, match='must be a str'):
        inferencer(path, [3])
    with pytest.raises(ValueError, match='batch_size'):
        inferencer(path, 'the ship', batch_size=0)


def _jpeg_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


#: Bad image files: name, content (from a valid JPEG's bytes; None: no
#: file), expected error and the message (after "Image #1 ").
BAD_IMAGE_FILES = [
    ('empty.png', lambda jpeg: b'', ValueError,
     r"is an empty file \(0 bytes\): '.*empty\.png'"),
    ('notes.jpg', lambda jpeg: b'the ship on the left\n', ValueError,
     r"cannot be decoded as an image: '.*notes\.jpg' \(21 bytes"),
    ('corrupt.jpg', lambda jpeg: jpeg[:4] + bytes(range(256)) * 4, ValueError,
     r"cannot be decoded as an image: '.*corrupt\.jpg'"),
    ('truncated.jpg', lambda jpeg: jpeg[:len(jpeg) // 2], ValueError,
     r"cannot be decoded as an image: '.*truncated\.jpg'"),
    ('missing.jpg', None, FileNotFoundError, r"not found: '.*missing\.jpg'"),
]


@pytest.mark.parametrize(
    'name,content,error,message',
    BAD_IMAGE_FILES,
    ids=[case[0] for case in BAD_IMAGE_FILES])
def test_bad_image_files(inferencer, test_samples, tmp_path, monkeypatch, name,
                         content, error, message):
    good = test_samples[0]['data_samples'].img_path
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content(_jpeg_bytes(good)))
    forwards = []
    monkeypatch.setattr(inferencer, 'forward',
                        lambda *args, **kwargs: forwards.append(1))
    # the bad file is the second: refused before the model runs on the
    # first, and named with its index
    with pytest.raises(error, match='Image #1 ' + message):
        inferencer([good, str(bad)], ['the ship', 'the ship'], batch_size=1)
    assert forwards == []
    with pytest.raises(error, match='Image #0 ' + message):
        inferencer(bad, 'the ship')


#: Inputs of wrong types: images, texts, error, message.
BAD_INPUT_TYPES = [
    ('img', None, TypeError,
     r'texts must be a referring expression \(str\) or a sequence of them, '
     'got NoneType: None'),
    ('img', 3, TypeError, r'texts must be .* got int: 3'),
    ('img', b'the ship', TypeError, r"texts must be .* got bytes: b'the"),
    ('img', ['the ship', None], TypeError,
     r'Referring expression #1 must be a str, got NoneType: None '
     r'\(texts\[1\]\)'),
    (['img',
      'img'], ['the ship',
               7], TypeError, r'#1 must be a str, got int: 7 \(texts\[1\]\)'),
    ('img', '  ', ValueError, r"#0 is empty: '  ' \(texts\)"),
    (None, 'the ship', TypeError,
     r'images must be an image file path or an RGB uint8 array or a '
     'sequence of them, got NoneType: None'),
    (['img', None], ['a', 'b'], TypeError,
     r'Image #1 must be a file path or an RGB uint8 array, got NoneType'),
]


@pytest.mark.parametrize(
    'images,texts,error,message',
    BAD_INPUT_TYPES,
    ids=[f'{i}-{case[1]!r}' for i, case in enumerate(BAD_INPUT_TYPES)])
def test_bad_input_types(inferencer, test_samples, images, texts, error,
                         message):
    path = test_samples[0]['data_samples'].img_path
    if isinstance(images, list):
        images = [path if i == 'img' else i for i in images]
    elif images == 'img':
        images = path
    with pytest.raises(error, match=message):
        inferencer(images, texts)


def test_construction_errors(tiny_setup, tmp_path):
    with pytest.raises(ValueError, match='needs weights'):
        RefSegInferencer(tiny_setup.cfg, weights=None, device='cpu')
    with pytest.raises(FileNotFoundError, match='Checkpoint not found'):
        RefSegInferencer(
            tiny_setup.cfg, weights=str(tmp_path / 'x.pth'), device='cpu')
    with pytest.raises(FileNotFoundError, match='Config file not found'):
        RefSegInferencer(
            str(tmp_path / 'x.py'), weights=tiny_setup.ckpt, device='cpu')
    # an incomplete checkpoint is an error, never a partly random model
    state = torch.load(tiny_setup.ckpt, map_location='cpu')['state_dict']
    dropped = sorted(state)[-1]
    del state[dropped]
    partial = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': state, 'meta': {}}, partial)
    with pytest.raises(RuntimeError, match=f'missing keys.*{dropped}'):
        RefSegInferencer(tiny_setup.cfg, weights=partial, device='cpu')
    # a test pipeline that drops the expression is refused
    cfg = copy.deepcopy(tiny_setup.cfg)
    cfg.test_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(256, 256), keep_ratio=False),
        dict(type='PackSegInputs')
    ]
    with pytest.raises(ValueError, match='does not pack the referring'):
        RefSegInferencer(cfg, weights=tiny_setup.ckpt, device='cpu')
