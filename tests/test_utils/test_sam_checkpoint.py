# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""HF SamModel <-> segment-anything key conversion, on random weights."""
import pytest
import torch

from mmrsrefseg.models import SAMPromptHead
from mmrsrefseg.testing.authors_rsrefseg import sam_config_from_head
from mmrsrefseg.testing.sam_hf import segment_anything_to_hf_sam
from mmrsrefseg.utils.checkpoint import StateDictError
from mmrsrefseg.utils.sam_checkpoint import (hf_sam_to_segment_anything,
                                             read_sam_state_dict)

HEAD = dict(
    sam_type=None,
    encoder_cfg=dict(
        embed_dim=32,
        depth=2,
        num_heads=2,
        global_attn_indexes=(1, ),
        window_size=4),
    image_size=128,
    prompt_channels=32,
    decoder_cfg=dict(
        transformer_depth=2, mlp_dim=64, num_heads=2, iou_head_hidden_dim=32))


@pytest.fixture(scope='module')
def hf_sam_dir(tmp_path_factory):
    from transformers import SamModel
    torch.manual_seed(0)
    model = SamModel(sam_config_from_head(HEAD)).eval()
    with torch.no_grad():  # HF initialises some tensors to 0 / 1
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    out = str(tmp_path_factory.mktemp('hf_sam'))
    model.save_pretrained(out)
    return out, model


def test_round_trip_is_exact(hf_sam_dir):
    _, model = hf_sam_dir
    hf = model.state_dict()
    sa = hf_sam_to_segment_anything(hf)
    head = SAMPromptHead(**HEAD)
    own = {
        f'{part}.{k}'
        for part in ('image_encoder', 'prompt_encoder', 'mask_decoder')
        for k in getattr(head, part).state_dict()
    }
    assert set(sa) == own
    back = segment_anything_to_hf_sam(sa)
    assert set(back) == set(hf)
    for k in hf:
        assert torch.equal(back[k], hf[k]), k


@torch.no_grad()
def test_hf_directory_loads_and_matches_hf_sam(hf_sam_dir):
    path, model = hf_sam_dir
    head = SAMPromptHead(**HEAD, checkpoint=path)
    head.init_weights()
    head.eval()
    torch.manual_seed(1)
    images = torch.rand(2, 3, 128, 128) * 255
    ours = head.encode_image(images)
    mean = head.pixel_mean.view(1, 3, 1, 1)
    std = head.pixel_std.view(1, 3, 1, 1)
    theirs = model.vision_encoder((images - mean) / std).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    # dense positional encoding: segment-anything's == HF's shared embedding
    pe = model.get_image_wide_positional_embeddings()[0]
    torch.testing.assert_close(
        head.prompt_encoder.get_dense_pe()[0], pe, atol=1e-5, rtol=0)


def test_inconsistent_positional_copies(hf_sam_dir):
    _, model = hf_sam_dir
    state = dict(model.state_dict())
    state['shared_image_embedding.positional_embedding'] = torch.zeros_like(
        state['shared_image_embedding.positional_embedding'])
    with pytest.raises(ValueError, match='positional_embedding'):
        hf_sam_to_segment_anything(state)


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        read_sam_state_dict(str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='no config.json'):
        read_sam_state_dict(str(tmp_path))


def _copy_dir(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return str(dst)


def test_missing_hf_key_is_named_not_mapped_wrongly(hf_sam_dir, tmp_path):
    """A key missing from an HF SAM directory is an error naming it (the MLP
    depth comes from config.json, so nothing else is renamed wrongly)."""
    from safetensors.torch import load_file, save_file
    path = _copy_dir(hf_sam_dir[0], tmp_path / 'broken')
    weights = f'{path}/model.safetensors'
    state = load_file(weights)
    gone = 'mask_decoder.output_hypernetworks_mlps.0.layers.0.bias'
    del state[gone]
    save_file(state, weights, metadata={'format': 'pt'})
    with pytest.raises(StateDictError, match=gone.replace('.', r'\.')):
        read_sam_state_dict(path)
    # the mapping itself keeps every other layer where it belongs
    sa = hf_sam_to_segment_anything(state)
    mlp = 'mask_decoder.output_hypernetworks_mlps.0.layers'
    assert tuple(sa[f'{mlp}.1.weight'].shape) == (32, 32)
    assert tuple(sa[f'{mlp}.2.weight'].shape) == (4, 32)
    assert f'{mlp}.1.bias' not in sa and f'{mlp}.2.bias' in sa


@pytest.mark.parametrize('content,match', [
    ('{"model_type": "sam",', 'not valid JSON'),
    ('[1, 2]', 'not a JSON object'),
    ('{"model_type": "clip"}', "model_type is 'clip'"),
])
def test_bad_config_json_is_named(hf_sam_dir, tmp_path, content, match):
    path = _copy_dir(hf_sam_dir[0], tmp_path / 'bad')
    with open(f'{path}/config.json', 'w') as f:
        f.write(content)
    with pytest.raises(ValueError, match=match) as info:
        read_sam_state_dict(path)
    assert 'config.json' in str(info.value)
