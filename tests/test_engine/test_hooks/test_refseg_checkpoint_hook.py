# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RefSegCheckpointHook: trained-only checkpoints during a real (tiny)
training run, resuming and ``load_from`` from them, and strict loading
through ``tools/train.py``."""
import copy
import importlib.util

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmseg.registry import MODELS
from utils.tiny_refseg import REPO_ROOT, short_training

from mmrsrefseg.models.utils import TRAINED_ONLY_KEY


def load(path):
    return torch.load(path, map_location='cpu')


def loss_history(ckpt):
    values, _ = ckpt['message_hub']['log_scalars']['train/loss'].data
    return values.tolist()


class CaptureWeights(Hook):
    """Keeps the model's state dict as training starts (after loading)."""

    def before_train(self, runner):
        self.state = copy.deepcopy(runner.model.state_dict())


def test_saves_only_what_was_trained(trained_only_run):
    ckpt = load(trained_only_run.ckpts[4])
    saved = ckpt['state_dict']
    full = load(trained_only_run.full)['state_dict']
    model = MODELS.build(trained_only_run.cfg.model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    pretrained = ('backbone.', 'decode_head.')  # CLIP and SAM files
    outside = {k for k in model.state_dict() if not k.startswith(pretrained)}
    assert outside and all(k.startswith('neck.') for k in outside)
    assert set(saved) == trainable | outside
    # frozen CLIP weights and SAM's unused (frozen) prompt embeddings are
    # left out; LoRA matrices and the SAM weights that train are kept
    assert 'backbone.model.text_model.embeddings.token_embedding.weight' \
        not in saved
    assert 'decode_head.prompt_encoder.point_embeddings.0.weight' not in saved
    assert any('lora_A' in k for k in saved)
    assert 'decode_head.mask_decoder.output_upscaling.0.weight' in saved
    for key, value in saved.items():  # the trained values
        assert torch.equal(value, full[key]), key

    nbytes = sum(v.numel() * v.element_size() for v in saved.values())
    full_bytes = sum(v.numel() * v.element_size() for v in full.values())
    # the tiny CLIP (frozen) holds most of the weights: 12 % are kept
    assert nbytes < 0.2 * full_bytes, (nbytes, full_bytes)
    cfg = trained_only_run.cfg.model
    assert ckpt['meta'][TRAINED_ONLY_KEY] == dict(
        base=dict(
            backbone=cfg.backbone.pretrained,
            decode_head=cfg.decode_head.checkpoint),
        num_base_keys=len(full) - len(saved))


def test_resume_reproduces_training(trained_only_run, tmp_path):
    """Resuming from the trained-only checkpoint of iteration 2 gives the
    losses and weights of the uninterrupted run."""
    cfg = short_training(trained_only_run.cfg, tmp_path / 'resumed',
                         'trained_only_resume')
    cfg.load_from = trained_only_run.ckpts[2]
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 4
    resumed, ref = load(tmp_path / 'resumed' / 'iter_4.pth'), load(
        trained_only_run.ckpts[4])
    assert ref['meta'][TRAINED_ONLY_KEY] and resumed['meta'][TRAINED_ONLY_KEY]
    losses = loss_history(ref)
    assert len(losses) == 4 and len(set(losses)) == 4
    assert loss_history(resumed) == losses
    assert resumed['state_dict'].keys() == ref['state_dict'].keys()
    for key, value in ref['state_dict'].items():
        assert torch.equal(resumed['state_dict'][key], value), key


def test_load_from_trained_only(trained_only_run, tmp_path):
    """``load_from`` a trained-only checkpoint starts from the trained model
    (the frozen base from the config's files)."""
    cfg = short_training(
        trained_only_run.cfg,
        tmp_path / 'load_from',
        'trained_only_load_from',
        max_iters=2)
    cfg.load_from = trained_only_run.ckpts[4]
    runner = Runner.from_cfg(cfg)
    capture = CaptureWeights()
    runner.register_hook(capture, 'LOWEST')
    runner.train()
    full = load(trained_only_run.full)['state_dict']
    assert capture.state.keys() == full.keys()
    for key, value in full.items():
        assert torch.equal(capture.state[key], value), key


@pytest.fixture(scope='module')
def train_tool():
    """tools/train.py as a module (``main()`` reads ``sys.argv``)."""
    spec = importlib.util.spec_from_file_location(
        'refseg_train_tool', REPO_ROOT / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def partial_checkpoint(trained_only_run, tmp_path):
    """The trained-only checkpoint of iteration 2 without the prompter."""
    ckpt = load(trained_only_run.ckpts[2])
    neck = [k for k in ckpt['state_dict'] if k.startswith('neck.')]
    for key in neck:
        del ckpt['state_dict'][key]
    path = tmp_path / 'no_neck.pth'
    torch.save(ckpt, path)
    return str(path), neck


def test_train_py_load_from_is_strict(train_tool, trained_only_run,
                                      partial_checkpoint, tmp_path,
                                      monkeypatch):
    path, neck = partial_checkpoint
    config = tmp_path / 'train.py'
    trained_only_run.train_cfg.dump(str(config))
    work = tmp_path / 'work'
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr('sys.argv', [
        'train.py',
        str(config), '--work-dir',
        str(work), '--cfg-options', f'load_from={path}',
        'experiment_name=train_py_load_from',
        f'visualizer.name=vis_{tmp_path.name}'
    ])
    with pytest.raises(KeyError) as info:
        train_tool.main()
    message = str(info.value)
    assert f'Checkpoint {path} does not fit RSRefSeg' in message
    assert 'trained-only checkpoint' in message
    assert f'missing keys ({len(neck)}): {neck[0]}' in message
    assert not list(work.glob('iter_*.pth'))  # not one iteration trained


def test_train_py_resume_is_strict(train_tool, trained_only_run,
                                   partial_checkpoint, tmp_path, monkeypatch):
    """``--resume`` finds the latest checkpoint of the work dir itself; the
    error names that file."""
    path, neck = partial_checkpoint
    config = tmp_path / 'train.py'
    trained_only_run.train_cfg.dump(str(config))
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(path)
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr('sys.argv', [
        'train.py',
        str(config), '--work-dir',
        str(work), '--resume', '--cfg-options',
        'experiment_name=train_py_resume',
        f'visualizer.name=vis_{tmp_path.name}'
    ])
    with pytest.raises(KeyError) as info:
        train_tool.main()
    message = str(info.value)
    assert f'Checkpoint {path} does not fit RSRefSeg' in message
    assert f'missing keys ({len(neck)}): {neck[0]}' in message
    assert not list(work.glob('iter_*.pth'))


@pytest.mark.parametrize('content,message',
                         [(b'', 'is empty (0 bytes)'),
                          (b'not a checkpoint\n', 'not a complete')])
def test_train_py_unreadable_load_from(train_tool, trained_only_run, tmp_path,
                                       monkeypatch, content, message):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(content)
    config = tmp_path / 'train.py'
    trained_only_run.train_cfg.dump(str(config))
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr('sys.argv', [
        'train.py',
        str(config), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', f'load_from={bad}',
        'experiment_name=train_py_unreadable',
        f'visualizer.name=vis_{tmp_path.name}'
    ])
    with pytest.raises(ValueError) as info:
        train_tool.main()
    assert str(bad) in str(info.value) and message in str(info.value)


def test_paper_config_trained_only_size():
    """RSRefSeg-b (configs/rsrefseg_vitb.py), built on the meta device with
    the config's weight paths: its trained-only checkpoint keeps 16.5 M
    values, 66 MB in fp32, of the whole model's 3.94 GB."""
    from mmengine.config import Config

    from mmrsrefseg.models.utils import make_trained_only
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'rsrefseg_vitb.py'))
    paths = (cfg.model.backbone.pretrained, cfg.model.decode_head.checkpoint)
    cfg.model.backbone.pretrained = cfg.model.decode_head.checkpoint = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    # the configured sources (building with them would need the files only
    # in init_weights, which is not called here)
    model.backbone.pretrained, model.decode_head.checkpoint = paths
    full = model.state_dict()
    ckpt = make_trained_only(model, dict(state_dict=dict(full), meta={}))
    kept = ckpt['state_dict']
    nbytes = sum(v.numel() * v.element_size() for v in kept.values())
    full_bytes = sum(v.numel() * v.element_size() for v in full.values())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (len(kept), len(full)) == (680, 1758)
    assert trainable == 16_478_252
    assert sum(v.numel() for v in kept.values()) == 16_516_655
    assert nbytes / 1e6 == pytest.approx(66.07, abs=0.01)
    assert full_bytes / 1e9 == pytest.approx(3.94, abs=0.01)
    assert ckpt['meta'][TRAINED_ONLY_KEY]['base'] == dict(
        backbone=paths[0], decode_head=paths[1])
