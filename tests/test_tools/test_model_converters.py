# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/model_converters on checkpoints written in the real formats."""
import copy
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmrsrefseg.testing import (build_authors_from_config, randomise_weights,
                                tiny_siglip_rsrefseg_cfg)
from mmrsrefseg.testing.authors_rsrefseg import sam_config_from_head

ROOT = Path(__file__).resolve().parents[2]


def run_tool(name, *args, ok=True):
    """Run tools/model_converters/``name``; return stdout (``ok``) or
    stderr (expected to fail with exit status 1)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable,
         str(ROOT / 'tools' / 'model_converters' / name)] +
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300)
    if ok:
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stderr


def tool_error(name, *args):
    """Run tools/model_converters/``name``'s command line in this process
    (no interpreter start); return the message of the error it stops with.
    """
    argv = [name] + [str(a) for a in args]
    with mock.patch.object(sys, 'argv', argv):
        with pytest.raises((KeyError, ValueError, FileNotFoundError)) as info:
            runpy.run_path(
                str(ROOT / 'tools' / 'model_converters' / name),
                run_name='__main__')
    return str(info.value)


@pytest.fixture(scope='module')
def authors(siglip_tokenizer_dir):
    from transformers import AutoTokenizer
    init_default_scope('mmseg')
    tok = AutoTokenizer.from_pretrained(siglip_tokenizer_dir)
    cfg = tiny_siglip_rsrefseg_cfg(siglip_tokenizer_dir, len(tok))
    ref = build_authors_from_config(copy.deepcopy(cfg), tokenizer=tok)
    randomise_weights(ref, seed=5)
    return ref.eval(), cfg


def write_config(path, model_cfg):
    path.write_text("default_scope = 'mmseg'\n"
                    "custom_imports = dict(imports=['mmrsrefseg'], "
                    'allow_failed_imports=False)\n'
                    f'model = {model_cfg!r}\n')
    return path


@pytest.mark.parametrize('layout', ['deepspeed_dir', 'bare', 'mmengine'])
def test_authors_checkpoint_converts_and_evaluates(authors, tmp_path, layout):
    ref, cfg = authors
    # DeepSpeed ZeRO-2 fp16 keeps the module weights in half precision
    half = {
        k: v.half() if v.is_floating_point() else v
        for k, v in ref.state_dict().items()
    }
    if layout == 'deepspeed_dir':
        src = tmp_path / 'epoch_3.pth'
        src.mkdir()
        torch.save(
            dict(
                module=half,
                ds_version='0.16.0',
                global_steps=30,
                buffer_names=[k for k, _ in ref.named_buffers()]),
            src / 'mp_rank_00_model_states.pt')
    elif layout == 'bare':
        src = tmp_path / 'mp_rank_00_model_states.pth'
        torch.save(half, src)
    else:
        src = tmp_path / 'epoch_3.pth'
        torch.save(dict(meta=dict(epoch=3), state_dict=half), src)
    config = write_config(tmp_path / 'tiny_siglip.py', cfg)
    dst = tmp_path / 'converted.pth'
    out = run_tool('rsrefseg_authors2mmrsrefseg.py', src, dst, '--config',
                   config)
    assert 'verified against' in out
    ckpt = torch.load(dst, map_location='cpu', weights_only=False)
    assert ckpt['meta']['prompter_num_downsample'] == 2
    ours = MODELS.build(cfg)
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    ours.eval()
    rounded = copy.deepcopy(ref)
    rounded.load_state_dict({k: v.float() for k, v in half.items()})
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    images = torch.rand(1, 3, 128, 128) * 255
    sample = SegDataSample(
        metainfo=dict(text='the white ship', img_shape=(128, 128)))
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, 128, 128).long())
    with torch.no_grad():
        got = ours._forward(images, [sample])
        expected = rounded(images / 255., ['the white ship'])['masks']
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_authors_checkpoint_errors(authors, tmp_path):
    ref, cfg = authors
    state = dict(ref.state_dict())
    state['some_new_module.weight'] = torch.zeros(1)
    src = tmp_path / 'bad.pth'
    torch.save(state, src)
    out = subprocess.run([
        sys.executable,
        str(ROOT / 'tools/model_converters/rsrefseg_authors2mmrsrefseg.py'),
        str(src),
        str(tmp_path / 'x.pth')
    ],
                         capture_output=True,
                         text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode != 0
    assert 'some_new_module.weight' in out.stderr
    empty = tmp_path / 'empty_dir'
    empty.mkdir()
    from mmrsrefseg.utils.authors_checkpoint import read_authors_state_dict
    with pytest.raises(FileNotFoundError, match='mp_rank_00_model_states'):
        read_authors_state_dict(str(empty))


def test_sam_hf_directory_to_pth(tmp_path):
    from transformers import SamModel

    from mmrsrefseg.models import SAMPromptHead
    head_cfg = tiny_siglip_rsrefseg_cfg('unused', 100)['decode_head']
    head_cfg = {k: v for k, v in head_cfg.items() if k != 'type'}
    torch.manual_seed(0)
    hf = SamModel(sam_config_from_head(head_cfg)).eval()
    hf.save_pretrained(tmp_path / 'sam-hf')
    dst = tmp_path / 'sam.pth'
    run_tool('sam_hf2pth.py', tmp_path / 'sam-hf', dst)
    state = torch.load(dst, map_location='cpu', weights_only=True)
    torch.testing.assert_close(state['pixel_mean'],
                               torch.tensor([123.675, 116.28, 103.53]))
    head = SAMPromptHead(**head_cfg, checkpoint=str(dst))
    head.init_weights()  # strict: every key present, none unexpected
    from_dir = SAMPromptHead(**head_cfg, checkpoint=str(tmp_path / 'sam-hf'))
    from_dir.init_weights()
    for (k, a), (_, b) in zip(head.state_dict().items(),
                              from_dir.state_dict().items()):
        assert torch.equal(a, b), k


# --------------------------------------------------------------------------
# SAM HF directory -> segment-anything .pth: incomplete or bad input refused


@pytest.fixture(scope='module')
def sam_hf_dir(tmp_path_factory):
    """An HF SamModel directory of the tiny SigLIP RSRefSeg's SAM."""
    from transformers import SamModel
    head_cfg = tiny_siglip_rsrefseg_cfg('unused', 100)['decode_head']
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp('sam_hf') / 'sam-hf'
    SamModel(sam_config_from_head(head_cfg)).save_pretrained(out)
    return out


def test_sam_hf2pth_refuses_a_missing_key(sam_hf_dir, tmp_path):
    from safetensors.torch import load_file, save_file
    src = tmp_path / 'sam-hf'
    shutil.copytree(sam_hf_dir, src)
    state = load_file(src / 'model.safetensors')
    gone = 'mask_decoder.output_hypernetworks_mlps.0.layers.0.bias'
    del state[gone]
    save_file(state, src / 'model.safetensors', metadata={'format': 'pt'})
    dst = tmp_path / 'sam.pth'
    err = run_tool('sam_hf2pth.py', src, dst, ok=False)
    assert f'missing keys (1): {gone}' in err and str(src) in err
    assert not dst.exists()


@pytest.mark.parametrize('content,message', [
    ('', 'not valid JSON (line 1'),
    ('{"model_type": "sam",', 'not valid JSON'),
    ('[1, 2]', 'holds a list, not a JSON object'),
    ('{"model_type": "clip"}', "model_type is 'clip', expected 'sam'"),
])
def test_sam_hf2pth_refuses_a_bad_config_json(sam_hf_dir, tmp_path, content,
                                              message):
    src = tmp_path / 'sam-hf'
    shutil.copytree(sam_hf_dir, src)
    (src / 'config.json').write_text(content)
    dst = tmp_path / 'sam.pth'
    err = tool_error('sam_hf2pth.py', src, dst)
    assert f'{src / "config.json"}' in err and message in err
    assert not dst.exists()


def test_sam_hf2pth_refuses_a_bad_preprocessor_config(sam_hf_dir, tmp_path):
    src = tmp_path / 'sam-hf'
    shutil.copytree(sam_hf_dir, src)
    (src / 'preprocessor_config.json').write_text('{"image_mean": [0.5,')
    err = tool_error('sam_hf2pth.py', src, tmp_path / 'sam.pth')
    assert f'{src / "preprocessor_config.json"}: not valid' in err


# --------------------------------------------------------------------------
# The authors' checkpoints: verified against the architecture, with and
# without --config


def paper_model_shapes(config):
    """Key -> shape of our RSRefSeg of ``config`` (built on meta)."""
    cfg = Config.fromfile(str(ROOT / 'configs' / config))
    cfg.model.backbone.pretrained = None
    cfg.model.decode_head.checkpoint = None
    init_default_scope('mmseg')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def paper_authors_state(config):
    """The key layout and shapes of a checkpoint of the authors' code for a
    paper config, every tensor a zero-stride view of one element (so a
    billion-parameter layout takes a few hundred KB on disk)."""
    cfg = Config.fromfile(str(ROOT / 'configs' / config))
    with torch.device('meta'):
        ref = build_authors_from_config(cfg.model.to_dict())
    return {
        k: torch.zeros((), dtype=v.dtype).expand(v.shape)
        for k, v in ref.state_dict().items()
    }


@pytest.fixture(scope='module')
def paper_b(tmp_path_factory):
    """(authors' state dict, its file) of RSRefSeg-b."""
    state = paper_authors_state('rsrefseg_vitb.py')
    path = tmp_path_factory.mktemp('paper_b') / 'mp_rank_00_model_states.pth'
    torch.save(state, path)
    return state, path


@pytest.mark.parametrize(
    'config', ['rsrefseg_vitb.py', 'rsrefseg_vitl.py', 'rsrefseg_vith.py'])
def test_authors_paper_size_without_config(tmp_path, config):
    """SAM ViT-B/L/H is told by the image encoder's width; every tensor of
    that paper model must be there, with its shape."""
    src = tmp_path / 'mp_rank_00_model_states.pth'
    torch.save(paper_authors_state(config), src)
    dst = tmp_path / 'converted.pth'
    tool = ROOT / 'tools/model_converters/rsrefseg_authors2mmrsrefseg.py'
    if config == 'rsrefseg_vitb.py':
        # the command, and its peak memory: the model is built without
        # weights, far below its 4 GB in fp32. VmHWM is the peak of this
        # process's own address space; getrusage's ru_maxrss would carry
        # the (large) pytest parent's peak over the fork and exec.
        code = ('import runpy, sys; sys.argv = sys.argv[1:]; '
                "runpy.run_path(sys.argv[0], run_name='__main__'); "
                "hwm = [ln for ln in open('/proc/self/status') "
                "if ln.startswith('VmHWM:')][0]; "
                "print('vmhwm_kb', hwm.split()[1])")
        proc = subprocess.run(
            [sys.executable, '-c', code,
             str(tool),
             str(src),
             str(dst)],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f'configs/{config})' in proc.stdout
        peak_gb = int(proc.stdout.split('vmhwm_kb')[1]) / 2**20
        assert peak_gb < 2.5, peak_gb
    else:
        with mock.patch.object(sys, 'argv', ['x', str(src), str(dst)]):
            runpy.run_path(str(tool), run_name='__main__')
    ckpt = torch.load(dst, map_location='cpu', weights_only=False)
    expected = paper_model_shapes(config)
    assert {
        k: tuple(v.shape)
        for k, v in ckpt['state_dict'].items()
    } == expected
    assert ckpt['meta']['verified_against'].endswith(f'configs/{config}')


def test_authors_paper_size_incomplete(paper_b, tmp_path):
    state, _ = paper_b
    partial = {
        k: v
        for k, v in state.items()
        if not k.startswith('prompter_down_channel.conv.')
    }
    src = tmp_path / 'partial.pth'
    torch.save(partial, src)
    dst = tmp_path / 'x.pth'
    err = run_tool('rsrefseg_authors2mmrsrefseg.py', src, dst, ok=False)
    assert (f'{src} does not hold the RSRefSeg model of '
            f'{ROOT / "configs" / "rsrefseg_vitb.py"}') in err
    assert 'pass --config' in err
    assert 'missing keys (1): neck.input_proj.conv.weight' in err
    assert not dst.exists()
    # with --config: the same check against that config
    err = tool_error('rsrefseg_authors2mmrsrefseg.py', src, dst, '--config',
                     ROOT / 'configs' / 'rsrefseg_vitb.py')
    assert 'neck.input_proj.conv.weight' in err and 'pass --config' not in err
    assert not dst.exists()


def test_authors_paper_size_wrong_config(paper_b, tmp_path):
    """A ViT-B checkpoint against the ViT-L config: mis-shaped keys."""
    _, src = paper_b
    dst = tmp_path / 'x.pth'
    err = tool_error('rsrefseg_authors2mmrsrefseg.py', src, dst, '--config',
                     ROOT / 'configs' / 'rsrefseg_vitl.py')
    assert 'mis-shaped' in err and 'missing' in err
    assert ('decode_head.image_encoder.pos_embed (checkpoint (1, 64, 64, '
            '768), model (1, 64, 64, 1024))') in err
    assert not dst.exists()


@pytest.mark.parametrize('layout', ['bare', 'deepspeed'])
def test_authors_empty_checkpoint(tmp_path, layout):
    src = tmp_path / 'empty.pth'
    torch.save({} if layout == 'bare' else dict(module={}), src)
    dst = tmp_path / 'x.pth'
    if layout == 'bare':  # the command itself: exit status 1
        err = run_tool('rsrefseg_authors2mmrsrefseg.py', src, dst, ok=False)
    else:
        err = tool_error('rsrefseg_authors2mmrsrefseg.py', src, dst)
    assert f'{src} holds no tensors' in err
    assert not dst.exists()


def test_authors_unknown_architecture_needs_config(authors, tmp_path):
    ref, cfg = authors
    src = tmp_path / 'tiny.pth'
    torch.save(ref.state_dict(), src)
    dst = tmp_path / 'x.pth'
    err = tool_error('rsrefseg_authors2mmrsrefseg.py', src, dst)
    assert 'SAM image-encoder width 32 matches no paper config' in err
    assert 'pass --config' in err
    # only a prompter: no SAM to tell the architecture by
    prompter = {
        k: v
        for k, v in ref.state_dict().items() if k.startswith('prompter_')
    }
    torch.save(prompter, src)
    err = tool_error('rsrefseg_authors2mmrsrefseg.py', src, dst)
    assert 'has no SAM image encoder' in err and 'pass --config' in err
    assert not dst.exists()


def test_authors_incomplete_with_config(authors, tmp_path):
    ref, cfg = authors
    state = dict(ref.state_dict())
    gone = 'sam_mask_decoder.model.iou_prediction_head.proj_out.weight'
    del state[gone]
    src = tmp_path / 'partial.pth'
    torch.save(state, src)
    config = write_config(tmp_path / 'tiny_siglip.py', cfg)
    dst = tmp_path / 'x.pth'
    err = tool_error('rsrefseg_authors2mmrsrefseg.py', src, dst, '--config',
                     config)
    assert f'{src} does not hold the RSRefSeg model of {config}' in err
    # HF's proj_out of the 3-layer IoU head is segment-anything's layers.2
    assert (
        'missing keys (1): '
        'decode_head.mask_decoder.iou_prediction_head.layers.2.weight') in err
    assert not dst.exists()


@pytest.mark.parametrize('content', [b'', b'not a checkpoint\n'])
def test_authors_unreadable_file(tmp_path, content):
    src = tmp_path / 'bad.pt'
    src.write_bytes(content)
    err = tool_error('rsrefseg_authors2mmrsrefseg.py', src, tmp_path / 'x.pth')
    assert f'Checkpoint file {src} is empty' in err or \
        f'Cannot read checkpoint {src}' in err
