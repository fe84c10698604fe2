# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/model_converters on checkpoints written in the real formats."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmrsrefseg.testing import (build_authors_from_config, randomise_weights,
                                tiny_siglip_rsrefseg_cfg)
from mmrsrefseg.testing.authors_rsrefseg import sam_config_from_head

ROOT = Path(__file__).resolve().parents[2]


def run_tool(name, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable,
         str(ROOT / 'tools' / 'model_converters' / name)] +
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


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
