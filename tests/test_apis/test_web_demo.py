# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""demo/web_demo.py: input conversion, the served page, a real browser.

The server runs as a person starts it (``python demo/web_demo.py CONFIG
--checkpoint CKPT --port PORT``, bound to 127.0.0.1) in a subprocess for
this module; gradio's own client drives its API and Debian's headless
Chromium loads the page (skipped when ``chromium`` is not on PATH;
``tools/run_tests.sh`` installs it).
"""
import importlib.util
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import cv2
import mmcv
import numpy as np
import pytest
from mmseg.registry import DATASETS
from PIL import Image
from utils.tiny_refseg import REPO_ROOT

#: Seconds the server may take to start (model build + gradio import).
START_TIMEOUT = 300


def load_module(relpath: str, name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def web_demo():
    pytest.importorskip('gradio')
    return load_module('demo/web_demo.py', 'web_demo')


# ------------------------------------------------------ input conversion
def test_stretch_to_uint8_hand_values(web_demo):
    band = np.arange(101, dtype=np.uint16).reshape(1, 101) * 100
    out, lo, hi = web_demo.stretch_to_uint8(band)
    # 2nd / 98th percentiles of 0, 100, ..., 10000: 200 and 9800
    assert (lo, hi) == (200., 9800.)
    assert out.dtype == np.uint8
    assert out[0, 0] == 0 and out[0, 2] == 0 and out[0, 98] == 255
    # 5000 -> round(255 * 4800 / 9600) = round(127.5) = 128
    assert out[0, 50] == 128
    flat, lo, hi = web_demo.stretch_to_uint8(np.full((2, 2), 7.))
    assert (lo, hi) == (7., 7.) and (flat == 0).all()
    with pytest.raises(ValueError, match='finite'):
        web_demo.stretch_to_uint8(np.full((2, 2), np.nan))


def test_to_rgb_uint8_modes(web_demo):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    out, notes = web_demo.to_rgb_uint8(Image.fromarray(rgb))
    np.testing.assert_array_equal(out, rgb)
    assert notes == []
    gray = rgb[..., 0]
    out, notes = web_demo.to_rgb_uint8(Image.fromarray(gray))
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, 2))
    assert 'grayscale' in notes[0]
    rgba = np.concatenate([rgb, np.zeros((8, 10, 1), np.uint8)], axis=2)
    out, notes = web_demo.to_rgb_uint8(Image.fromarray(rgba))
    np.testing.assert_array_equal(out, rgb)  # colours kept
    assert 'alpha' in notes[0]
    band16 = (rng.integers(0, 4096, (8, 10))).astype(np.uint16)
    image16 = Image.fromarray(band16)
    assert image16.mode.startswith('I;16')
    out, notes = web_demo.to_rgb_uint8(image16)
    expected, _, _ = web_demo.stretch_to_uint8(band16)
    np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, 2))
    assert 'stretched to 8 bit' in notes[0]
    out, notes = web_demo.to_rgb_uint8(
        Image.fromarray(band16.astype(np.float32)))  # mode F
    np.testing.assert_array_equal(out[..., 0], expected)
    palette = Image.fromarray(rgb).convert('P')
    out, notes = web_demo.to_rgb_uint8(palette)
    np.testing.assert_array_equal(out, np.asarray(palette.convert('RGB')))
    assert 'P image converted' in notes[0]


def test_load_rgb_large_and_refused(web_demo, tmp_path):
    big = tmp_path / 'big.png'
    image = np.zeros((5000, 4000, 3), np.uint8)
    image[:2500] = (200, 30, 30)
    cv2.imwrite(str(big), image[..., ::-1])  # RGB -> BGR
    out, notes = web_demo.load_rgb(str(big), max_side=2048)
    assert out.shape == (2048, 1638, 3)  # 4000 * 2048 / 5000 = 1638.4
    assert (out[:1000] == (200, 30, 30)).all() and (out[1100:] == 0).all()
    assert 'downscaled from 4000 x 5000 to 1638 x 2048' in notes[0]
    with pytest.raises(ValueError, match=r'20\.0 MP'):
        web_demo.load_rgb(str(big), max_pixels=10e6)
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'no image')
    with pytest.raises(ValueError, match="Cannot read 'bad.png'"):
        web_demo.load_rgb(str(bad))


def _jpeg(path) -> bytes:
    """A valid JPEG's bytes (the synthetic test image)."""
    with open(path, 'rb') as f:
        return f.read()


#: Uploads that are no usable image: name, content from a valid JPEG's
#: bytes, the demo's message.
BAD_UPLOADS = [
    ('notes.png', lambda jpeg: b'the ship on the left\n',
     "Cannot read 'notes.png' as an image: cannot identify image file"),
    ('empty.png', lambda jpeg: b'',
     "Cannot read 'empty.png' as an image: it is an empty file (0 bytes)"),
    ('corrupt.jpg', lambda jpeg: jpeg[:4] + bytes(range(256)) * 4,
     "Cannot read 'corrupt.jpg' as an image: cannot identify image file"),
    ('truncated.jpg', lambda jpeg: jpeg[:len(jpeg) // 2],
     "Cannot decode 'truncated.jpg': image file is truncated"),
]


def _write_bad_uploads(folder, jpeg_path):
    """Write the BAD_UPLOADS files; ``[(path, message)]``."""
    jpeg = _jpeg(jpeg_path)
    written = []
    for name, content, message in BAD_UPLOADS:
        (folder / name).write_bytes(content(jpeg))
        written.append((folder / name, message))
    return written


def test_load_rgb_bad_files(web_demo, example, tmp_path):
    for path, message in _write_bad_uploads(tmp_path, example[0]):
        # named as uploaded, never by the server-side path
        with pytest.raises(ValueError) as err:
            web_demo.load_rgb(str(path), name='upload of ' + path.name)
        expected = message.replace(f"'{path.name}'",
                                   f"'upload of {path.name}'")
        assert expected in str(err.value)
        assert str(tmp_path) not in str(err.value)
    with pytest.raises(ValueError, match="Image 'gone.png' not found"):
        web_demo.load_rgb(str(tmp_path / 'gone.png'))


def test_default_checkpoint(web_demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match='quickstart'):
        web_demo.default_checkpoint(web_demo.DEFAULT_CONFIG)
    work = tmp_path / 'work_dirs' / 'rsrefseg_tiny_synthetic'
    work.mkdir(parents=True)
    old = work / 'best_mIoU_iter_500.pth'
    new = work / 'best_mIoU_iter_1500.pth'
    old.write_bytes(b'0')
    new.write_bytes(b'1')
    os.utime(old, (1e9, 1e9))
    assert web_demo.default_checkpoint(
        'configs/rsrefseg_tiny_synthetic.py') == str(
            new.relative_to(tmp_path))
    args = web_demo.parse_args([])
    assert args.config == 'configs/rsrefseg_tiny_synthetic.py'
    assert (args.host, args.port, args.checkpoint) == ('127.0.0.1', 7860, None)


def test_model_option(web_demo, tmp_path, monkeypatch):
    """--model rsrefseg2: the RSRefSeg 2 embedded default and its
    checkpoint folder."""
    args = web_demo.parse_args(['--model', 'rsrefseg2'])
    assert (args.model, args.config) == ('rsrefseg2',
                                         'configs/rsrefseg2_tiny_synthetic.py')
    args = web_demo.parse_args(['--model', 'rsrefseg'])
    assert args.config == 'configs/rsrefseg_tiny_synthetic.py'
    with pytest.raises(SystemExit) as exc:
        web_demo.parse_args(['my_config.py', '--model', 'rsrefseg2'])
    assert exc.value.code == 2
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
            FileNotFoundError,
            match='run `MODEL=rsrefseg2 bash tools/quickstart.sh` first'):
        web_demo.default_checkpoint('configs/rsrefseg2_tiny_synthetic.py')
    work = tmp_path / 'work_dirs' / 'rsrefseg2_tiny_synthetic'
    work.mkdir(parents=True)
    (work / 'best_mIoU_iter_300.pth').write_bytes(b'0')
    assert web_demo.default_checkpoint(
        'configs/rsrefseg2_tiny_synthetic.py') == osp.join(
            'work_dirs', 'rsrefseg2_tiny_synthetic', 'best_mIoU_iter_300.pth')
    with pytest.raises(FileNotFoundError, match='train one with'):
        web_demo.default_checkpoint('configs/rsrefseg2_rrsisd.py')


# ---------------------------------------------------------------- server
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _log_tail(path, n=3000):
    return path.read_text(errors='replace')[-n:] if path.exists() else ''


def _serve(root, config, checkpoint, *options):
    """``python demo/web_demo.py CONFIG --checkpoint CKPT`` on 127.0.0.1.

    Yields:
        SimpleNamespace: ``url``, ``root``, ``log``; the server is stopped
        when the generator closes.
    """
    port = _free_port()
    log = root / 'server.log'
    env = dict(
        os.environ,
        GRADIO_ANALYTICS_ENABLED='False',
        GRADIO_TEMP_DIR=str(root / 'gradio'),
        HF_HUB_OFFLINE='1',
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get('PYTHONPATH')) if p))
    cmd = [
        sys.executable,
        str(REPO_ROOT / 'demo' / 'web_demo.py'),
        str(config), '--checkpoint', checkpoint, '--device', 'cpu', '--port',
        str(port), *options
    ]
    url = f'http://127.0.0.1:{port}/'
    with open(log, 'w') as log_file:
        proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    pytest.fail(f'web demo exited with {proc.returncode}:\n'
                                f'{_log_tail(log)}')
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f'web demo not up within {START_TIMEOUT} s:'
                                f'\n{_log_tail(log)}')
                time.sleep(1)
            yield SimpleNamespace(url=url, root=root, log=log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope='module')
def server(web_demo, tiny_setup, tmp_path_factory):
    """The RSRefSeg web demo, stopped after the module."""
    root = tmp_path_factory.mktemp('web_demo')
    config = root / 'tiny_config.py'
    tiny_setup.cfg.dump(str(config))
    yield from _serve(root, config, tiny_setup.ckpt, '--num-examples', '2')


@pytest.fixture(scope='module')
def client(server):
    from gradio_client import Client
    return Client(
        server.url, verbose=False, download_files=str(server.root / 'got'))


@pytest.fixture(scope='module')
def example(tiny_setup):
    """The first sample of the test split: (image path, expression)."""
    dataset = DATASETS.build(tiny_setup.cfg.test_dataloader.dataset)
    info = dataset.get_data_info(0)
    return info['img_path'], info['text']


def _segment(client, path, text):
    from gradio_client import handle_file
    *pictures, status = client.predict(
        handle_file(str(path)), text, api_name='/segment')
    return [np.asarray(Image.open(p).convert('RGB')) for p in pictures], status


def _close(a, b, max_share=1e-3):
    """Equal but for a few pixels (model run in another process)."""
    differing = (np.abs(a.astype(int) - b.astype(int)) > 2).any(-1).mean()
    assert a.shape == b.shape and differing <= max_share, differing


def test_client_segments_like_the_inferencer(client, inferencer, example):
    path, text = example
    pictures, status = _segment(client, path, text)
    rgb = mmcv.imread(path, channel_order='rgb')
    expected = inferencer(rgb, text, return_activations=True)
    vis = inferencer.visualizer
    _close(pictures[0], vis.draw_overlay(rgb, expected['masks'][0]))
    keys = ('probabilities', 'global_activations', 'mean_local_activations')
    for picture, key in zip(pictures[1:], keys):
        _close(picture, vis.draw_heatmap(rgb, expected[key][0]))
    mask = expected['masks'][0]
    assert f'"{text}"' in status
    assert f'{int(mask.sum())} of {mask.size} pixels' in status
    assert 'Input:' not in status  # an RGB JPEG needs no conversion


def test_client_converts_other_inputs(client, inferencer, example, tmp_path,
                                      web_demo):
    path, text = example
    rgb = mmcv.imread(path, channel_order='rgb')
    h, w = rgb.shape[:2]
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    band16 = gray.astype(np.uint16) * 200 + 1000  # a 16-bit scene
    inputs = {
        'gray.png': (Image.fromarray(gray), 'grayscale image replicated'),
        'rgba.png': (Image.fromarray(np.dstack([rgb,
                                                np.full_like(gray, 9)])),
                     'alpha channel dropped'),
        'gray16.png': (Image.fromarray(band16), 'stretched to 8 bit'),
    }
    for name, (image, note) in inputs.items():
        image.save(tmp_path / name)
        pictures, status = _segment(client, tmp_path / name, text)
        assert note in status, (name, status)
        assert all(p.shape == (h, w, 3) for p in pictures)
    # the 16-bit image is segmented as its 2-98 % stretch to 8 bit
    lo, hi = np.percentile(band16.astype(np.float64), (2, 98))
    stretched = np.clip(np.round((band16 - lo) * 255. / (hi - lo)), 0, 255)
    stretched = np.repeat(stretched.astype(np.uint8)[..., None], 3, axis=2)
    expected = inferencer(stretched, text)['masks'][0]
    _close(pictures[0],
           inferencer.visualizer.draw_overlay(stretched, expected))


def test_client_large_image(client, example, tmp_path):
    path, text = example
    rgb = mmcv.imread(path, channel_order='rgb')
    big = cv2.resize(rgb, (5000, 5000), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / 'big.png'), big[..., ::-1])
    pictures, status = _segment(client, tmp_path / 'big.png', text)
    assert all(p.shape == (2048, 2048, 3) for p in pictures)
    assert 'downscaled from 5000 x 5000 to 2048 x 2048' in status


def test_client_errors(client, example, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    path, _ = example
    with pytest.raises(AppError, match='Type a referring expression'):
        client.predict(handle_file(path), '   ', api_name='/segment')
    with pytest.raises(AppError, match='Upload an aerial image'):
        client.predict(None, 'the ship', api_name='/segment')
    bad = tmp_path / 'not_an_image.png'
    bad.write_bytes(b'plain text')
    with pytest.raises(AppError, match='cannot identify image file'):
        client.predict(handle_file(str(bad)), 'the ship', api_name='/segment')
    # the server still answers
    pictures, _ = _segment(client, path, 'the ship')
    assert len(pictures) == 4


def test_client_bad_uploads(client, server, example, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    for path, message in _write_bad_uploads(tmp_path, example[0]):
        with pytest.raises(AppError) as err:
            client.predict(
                handle_file(str(path)), 'the ship', api_name='/segment')
        shown = str(err.value)
        # the demo's own message, not gradio's, without a server path
        assert message in shown, shown
        assert 'Could not preprocess' not in shown
        # the uploads' temporary folder (GRADIO_TEMP_DIR) and their origin
        assert str(server.root / 'gradio') not in shown
        assert str(tmp_path) not in shown
    pictures, _ = _segment(client, example[0], 'the ship')
    assert len(pictures) == 4


def test_api_refuses_server_paths(server):
    """segment() reads upload paths itself: gradio still lets through only
    files a user uploaded, never a path the request names."""
    request = urllib.request.Request(
        server.url + 'gradio_api/call/segment',
        data=json.dumps({
            'data': [{
                'path': str(server.root / 'tiny_config.py'),
                'meta': {
                    '_type': 'gradio.FileData'
                }
            }, 'the ship']
        }).encode(),
        headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.load(response)['event_id']
    with urllib.request.urlopen(
            f'{server.url}gradio_api/call/segment/{event_id}',
            timeout=60) as response:
        events = response.read().decode()
    assert events.startswith('event: error'), events
    assert 'not uploaded by a user' in events


def test_client_truncation_notice(client, inferencer, example):
    path, _ = example
    # 6 x 9 words: far more than the tiny text tower's 32 tokens
    long_text = ' '.join(['the red storage tank left of the white ship'] * 6)
    pictures, status = _segment(client, path, long_text)
    assert ('**Expression truncated**: it is longer than the 32 tokens the '
            'text encoder reads') in status
    # the model saw the truncated expression, as the inferencer does
    rgb = mmcv.imread(path, channel_order='rgb')
    mask = inferencer(rgb, long_text)['masks'][0]
    _close(pictures[0], inferencer.visualizer.draw_overlay(rgb, mask))
    _, status = _segment(client, path, 'the red storage tank')
    assert 'truncated' not in status


# ----------------------------------------------------- RSRefSeg 2 server
@pytest.fixture(scope='module')
def server2(web_demo, rsrefseg2_setup, tmp_path_factory):
    """The web demo serving the tiny RSRefSeg 2, stopped after the module."""
    root = tmp_path_factory.mktemp('web_demo_rsrefseg2')
    yield from _serve(root, rsrefseg2_setup.config_file, rsrefseg2_setup.ckpt,
                      '--num-examples', '2')


@pytest.fixture(scope='module')
def client2(server2):
    from gradio_client import Client
    return Client(
        server2.url, verbose=False, download_files=str(server2.root / 'got'))


def test_rsrefseg2_client_segments_like_the_inferencer(client2, inferencer2,
                                                       example):
    """RSRefSeg 2: overlay, probability and one activation panel, the
    dense-prompt activation."""
    path, text = example
    pictures, status = _segment(client2, path, text)
    assert len(pictures) == 3
    rgb = mmcv.imread(path, channel_order='rgb')
    expected = inferencer2(rgb, text, return_activations=True)
    assert set(expected) == {
        'masks', 'probabilities', 'dense_prompt_activations'
    }
    vis = inferencer2.visualizer
    _close(pictures[0], vis.draw_overlay(rgb, expected['masks'][0]))
    for picture, key in zip(pictures[1:],
                            ('probabilities', 'dense_prompt_activations')):
        _close(picture, vis.draw_heatmap(rgb, expected[key][0]))
    mask = expected['masks'][0]
    assert f'{int(mask.sum())} of {mask.size} pixels' in status


def test_rsrefseg2_page_titles(server2):
    """The page names the model and the panels it shows."""
    with urllib.request.urlopen(server2.url + 'config', timeout=30) as f:
        config = json.load(f)
    labels = [
        c['props'].get('label') for c in config['components']
        if c.get('type') == 'image'
    ]
    assert labels == [
        'aerial image', 'mask overlay', 'mask probability',
        'dense-prompt activation'
    ]
    page = json.dumps(config)
    assert 'Model: RSRefSeg2' in page and 'global activation' not in page


# --------------------------------------------------------------- browser
@pytest.fixture(scope='module')
def browser_page():
    if shutil.which('chromium') is None:
        pytest.skip('chromium not on PATH (tools/run_tests.sh installs '
                    "Debian's chromium package)")
    tool = load_module('tools/misc/browser_screenshot.py',
                       'browser_screenshot')
    with tool.DevToolsPage('chromium', (1400, 1000)) as page:
        yield page


def test_browser_renders_example(browser_page, server, example, tmp_path):
    path, text = example
    page_text = browser_page.open(
        server.url + '?example=0', wait_text='segmented in', timeout=120)
    for label in ('referring expression', 'mask overlay', 'mask probability',
                  'global activation', 'mean local activation', 'examples',
                  f'"{text}"'):
        assert label in page_text, label
    # four result pictures are shown
    shown = browser_page.evaluate(
        'Array.from(document.querySelectorAll("img")).filter('
        'i => i.naturalWidth > 0 && i.src.includes("image.png")).length')
    assert shown >= 4
    shot = tmp_path / 'page.png'
    browser_page.screenshot(str(shot))
    picture = cv2.imread(str(shot))
    assert picture.shape == (1000, 1400, 3)
    assert picture.std() > 20  # not a blank page


def test_browser_upload_and_segment(browser_page, server, example, tmp_path):
    path, _ = example
    gray16 = cv2.cvtColor(mmcv.imread(path), cv2.COLOR_BGR2GRAY).astype(
        np.uint16) * 250
    upload = tmp_path / 'upload16.png'
    Image.fromarray(gray16).save(upload)
    browser_page.open(server.url)
    browser_page.wait_for('document.querySelector("#image input[type=file]")',
                          60, 'the upload field')
    browser_page.set_files('#image input[type=file]', [str(upload)])
    browser_page.wait_for('document.querySelector("#image img")', 60,
                          'the uploaded image')
    browser_page.type_text('#expression textarea, #expression input',
                           'the windmill')
    browser_page.click('#segment')
    page_text = browser_page.wait_text('stretched to 8 bit', 120)
    assert '"the windmill"' in page_text
    # an empty expression: a message on the page, not an error page
    browser_page.evaluate(
        '(() => { const e = document.querySelector("#expression textarea, '
        '#expression input"); e.value = ""; '
        'e.dispatchEvent(new Event("input", {bubbles: true})); })()')
    browser_page.click('#segment')
    page_text = browser_page.wait_text('Type a referring expression', 60)
    assert 'mask overlay' in page_text


def _upload_and_segment(page, url, upload, text):
    """Open the page, upload a file, type ``text``, click Segment."""
    page.open(url)
    page.wait_for('document.querySelector("#image input[type=file]")', 60,
                  'the upload field')
    page.set_files('#image input[type=file]', [str(upload)])
    page.wait_for('document.querySelector("#image img")', 60,
                  'the uploaded file')
    page.type_text('#expression textarea, #expression input', text)
    page.click('#segment')


def test_browser_bad_uploads(browser_page, server, example, tmp_path):
    for path, message in _write_bad_uploads(tmp_path, example[0])[:3]:
        _upload_and_segment(browser_page, server.url, path, 'the ship')
        page_text = browser_page.wait_text(message, 60)
        assert 'Could not preprocess' not in page_text
        assert str(server.root / 'gradio') not in page_text
        assert str(tmp_path) not in page_text


def test_browser_truncation_notice(browser_page, server, example):
    long_text = ' '.join(['the red storage tank left of the white ship'] * 6)
    _upload_and_segment(browser_page, server.url, example[0], long_text)
    page_text = browser_page.wait_text('Expression truncated', 120)
    assert 'longer than the 32 tokens the text encoder reads' in page_text
