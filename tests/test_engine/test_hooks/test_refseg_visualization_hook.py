# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegVisualizationHook: tools/test.py --show-dir pictures per sample."""
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, HOOKS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from mmrsrefseg.engine import RefSegVisualizationHook

REPO_ROOT = Path(__file__).resolve().parents[3]


def load_tool(relpath: str, name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_test_py_show_dir(vis_setup, tmp_path, monkeypatch):
    test_tool = load_tool('tools/test.py', 'refseg_test_tool')
    show_dir = tmp_path / 'show'
    monkeypatch.setenv('LOCAL_RANK', '0')  # restored after the test
    monkeypatch.setattr('sys.argv', [
        'test.py', vis_setup.config_file, vis_setup.ckpt, '--work-dir',
        str(tmp_path / 'work'), '--show-dir',
        str(show_dir)
    ])
    test_tool.main()

    dataset = DATASETS.build(vis_setup.cfg.test_dataloader.dataset)
    expected = {
        f'test_ref{info["ref_id"]}_sent{info["sent_id"]}_0.png': info
        for info in (dataset.get_data_info(i) for i in range(len(dataset)))
    }
    pictures = sorted((show_dir / 'vis_data' / 'vis_image').glob('*.png'))
    assert sorted(p.name for p in pictures) == sorted(expected)
    for picture in pictures:
        info = expected[picture.name]
        h, w = cv2.imread(info['img_path']).shape[:2]
        drawn = cv2.imread(str(picture))
        # header + (image | ground truth | prediction)
        assert drawn.shape[1] == 3 * w and drawn.shape[0] > h
        # the left panel is the image itself
        image = cv2.imread(info['img_path'])
        assert (drawn[-h:, :w] == image).all()


def test_registered_and_default_off():
    SegLocalVisualizer.get_instance('hook_default_vis')
    hook = HOOKS.build(dict(type='RefSegVisualizationHook'))
    assert isinstance(hook, RefSegVisualizationHook)
    assert hook.draw is False and hook.interval == 1


def test_sample_names():
    with_ids = SegDataSample(
        metainfo=dict(ref_id=5, sent_id=50, img_path='a/b/00012.jpg'))
    assert RefSegVisualizationHook.sample_name(with_ids, 'val',
                                               3) == 'val_ref5_sent50'
    no_sent = SegDataSample(metainfo=dict(ref_id=5))
    assert RefSegVisualizationHook.sample_name(no_sent, 'test',
                                               0) == 'test_ref5'
    no_ids = SegDataSample(metainfo=dict(img_path='a/b/00012.jpg'))
    assert RefSegVisualizationHook.sample_name(no_ids, 'test',
                                               7) == 'test_00012_7'


def test_plain_visualizer_is_refused(tmp_path):
    SegLocalVisualizer.get_instance('hook_plain_vis')
    hook = RefSegVisualizationHook(draw=True)
    out = SegDataSample(metainfo=dict(img_path=str(tmp_path / 'x.png')))
    out.pred_sem_seg = PixelData(data=torch.zeros(1, 4, 4))
    runner = SimpleNamespace(message_hub=None)
    with pytest.raises(TypeError, match='RefSegLocalVisualizer'):
        hook.after_test_iter(runner, 0, {}, [out])


def test_test_py_show_activation(vis_setup, tmp_path, monkeypatch):
    from mmrsrefseg.apis import RefSegInferencer
    test_tool = load_tool('tools/test.py', 'refseg_test_tool_act')
    show_dir = tmp_path / 'show'
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr('sys.argv', [
        'test.py', vis_setup.config_file, vis_setup.ckpt, '--work-dir',
        str(tmp_path / 'work'), '--show-dir',
        str(show_dir), '--show-activation', '--cfg-options',
        f'visualizer.name=visualizer_act_{tmp_path.name}'
    ])
    test_tool.main()

    inferencer = RefSegInferencer(
        vis_setup.cfg, weights=vis_setup.ckpt, device='cpu')
    assert len(inferencer.model.neck._forward_hooks) == 0
    dataset = DATASETS.build(vis_setup.cfg.test_dataloader.dataset)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    pictures = sorted((show_dir / 'vis_data' / 'vis_image').glob('*.png'))
    assert len(pictures) == len(infos)
    for info in infos:
        name = f'test_ref{info["ref_id"]}_sent{info["sent_id"]}_0.png'
        drawn = cv2.imread(str(show_dir / 'vis_data' / 'vis_image' / name))
        image = cv2.imread(info['img_path'])
        h, w = image.shape[:2]
        # image | ground truth | prediction | global | mean local activation
        assert drawn.shape[1] == 5 * w
        body = drawn[-h:].astype(int)
        np.testing.assert_array_equal(body[:, :w], image)
        result = inferencer(
            info['img_path'], info['text'], return_activations=True)
        vis = inferencer.visualizer
        rgb = image[..., ::-1].copy()
        for k, key in ((3, 'global_activations'), (4,
                                                   'mean_local_activations')):
            expected = vis.draw_heatmap(rgb, result[key][0])[..., ::-1]
            # batch of 2 in the test loop vs 1 here: colour levels may
            # differ by one step where a value sits on a rounding edge
            diff = np.abs(body[:, k * w:(k + 1) * w] - expected.astype(int))
            assert diff.max() <= 4 and diff.mean() < 0.05


def test_test_py_show_activation_rsrefseg2(rsrefseg2_setup, tmp_path,
                                           monkeypatch):
    """RSRefSeg 2: one activation panel, the dense-prompt activation."""
    from mmrsrefseg.apis import RefSegInferencer
    test_tool = load_tool('tools/test.py', 'refseg_test_tool_act2')
    show_dir = tmp_path / 'show'
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr('sys.argv', [
        'test.py', rsrefseg2_setup.config_file, rsrefseg2_setup.ckpt,
        '--work-dir',
        str(tmp_path / 'work'), '--show-dir',
        str(show_dir), '--show-activation', '--cfg-options',
        f'visualizer.name=visualizer_act2_{tmp_path.name}'
    ])
    test_tool.main()

    inferencer = RefSegInferencer(
        rsrefseg2_setup.cfg, weights=rsrefseg2_setup.ckpt, device='cpu')
    dataset = DATASETS.build(rsrefseg2_setup.cfg.test_dataloader.dataset)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    folder = show_dir / 'vis_data' / 'vis_image'
    assert len(list(folder.glob('*.png'))) == len(infos)
    for info in infos:
        name = f'test_ref{info["ref_id"]}_sent{info["sent_id"]}_0.png'
        drawn = cv2.imread(str(folder / name))
        image = cv2.imread(info['img_path'])
        h, w = image.shape[:2]
        # image | ground truth | prediction | dense-prompt activation
        assert drawn.shape[1] == 4 * w
        body = drawn[-h:].astype(int)
        np.testing.assert_array_equal(body[:, :w], image)
        result = inferencer(
            info['img_path'], info['text'], return_activations=True)
        expected = inferencer.visualizer.draw_heatmap(
            image[..., ::-1].copy(),
            result['dense_prompt_activations'][0])[..., ::-1]
        # batch of 2 in the test loop vs 1 here: colour levels may differ
        # by one step where a value sits on a rounding edge
        diff = np.abs(body[:, 3 * w:] - expected.astype(int))
        assert diff.max() <= 4 and diff.mean() < 0.05


def test_show_activation_needs_show_dir(vis_setup, monkeypatch):
    test_tool = load_tool('tools/test.py', 'refseg_test_tool_act_err')
    monkeypatch.setattr('sys.argv', [
        'test.py', vis_setup.config_file, vis_setup.ckpt, '--show-activation'
    ])
    with pytest.raises(SystemExit) as exc:
        test_tool.main()
    assert exc.value.code == 2
