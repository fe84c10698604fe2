# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM 2.1 weights: HF -> Meta renaming and reading both formats."""
import pytest
import torch

from mmrsrefseg.testing.authors_rsrefseg2 import tiny_sam2_cfg
from mmrsrefseg.utils.sam2_checkpoint import (HF_SAM2_MODEL_TYPES,
                                              hf_mlp_depths, hf_sam2_to_meta,
                                              read_sam2_state_dict)
from mmrsrefseg.utils.sam2_import import build_sam2_model

CFG = tiny_sam2_cfg()
IMAGE_MODEL = ('image_encoder', 'sam_prompt_encoder', 'sam_mask_decoder',
               'no_mem_embed')


def meta_image_model_shapes(cfg=CFG):
    sam = build_sam2_model(cfg)
    return {
        k: tuple(v.shape)
        for k, v in sam.state_dict().items() if k.split('.')[0] in IMAGE_MODEL
    }


def hf_model(tiny_tools, **mask_decoder):
    from transformers import Sam2Model
    config = tiny_tools.hf_sam2_config(CFG)
    for key, value in mask_decoder.items():
        setattr(config.mask_decoder_config, key, value)
    torch.manual_seed(0)
    model = Sam2Model(config)
    with torch.no_grad():  # one Gaussian matrix, as converted checkpoints
        model.shared_image_embedding.positional_embedding.copy_(
            model.prompt_encoder.shared_embedding.positional_embedding)
    return model


def to_meta(model, state=None):
    return hf_sam2_to_meta(
        model.state_dict() if state is None else state, hf_mlp_depths(model),
        model.config.prompt_encoder_config.num_point_embeddings, 'test-dir')


def test_every_hf_key_maps_to_its_meta_key(tiny_tools):
    model = hf_model(tiny_tools)
    mapped = to_meta(model)
    assert {
        k: tuple(v.shape)
        for k, v in mapped.items()
    } == meta_image_model_shapes()
    hf = model.state_dict()
    pairs = {
        'image_encoder.trunk.blocks.1.mlp.layers.1.weight':
        'vision_encoder.backbone.blocks.1.mlp.proj_out.weight',
        'image_encoder.trunk.blocks.0.norm1.bias':
        'vision_encoder.backbone.blocks.0.layer_norm1.bias',
        'image_encoder.trunk.patch_embed.proj.weight':
        'vision_encoder.backbone.patch_embed.projection.weight',
        'image_encoder.neck.convs.3.conv.weight':
        'vision_encoder.neck.convs.3.weight',
        'sam_prompt_encoder.mask_downscaling.4.weight':
        'prompt_encoder.mask_embed.layer_norm2.weight',
        'sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix':
        'prompt_encoder.shared_embedding.positional_embedding',
        'sam_mask_decoder.transformer.layers.1.mlp.layers.1.bias':
        'mask_decoder.transformer.layers.1.mlp.proj_out.bias',
        'sam_mask_decoder.transformer.layers.0.cross_attn_image_to_token.'
        'out_proj.weight':
        'mask_decoder.transformer.layers.0.cross_attn_image_to_token.'
        'o_proj.weight',
        'sam_mask_decoder.transformer.layers.0.norm4.weight':
        'mask_decoder.transformer.layers.0.layer_norm4.weight',
        'sam_mask_decoder.transformer.norm_final_attn.bias':
        'mask_decoder.transformer.layer_norm_final_attn.bias',
        'sam_mask_decoder.output_upscaling.1.weight':
        'mask_decoder.upscale_layer_norm.weight',
        'sam_mask_decoder.output_hypernetworks_mlps.2.layers.1.weight':
        'mask_decoder.output_hypernetworks_mlps.2.layers.0.weight',
        'sam_mask_decoder.iou_prediction_head.layers.2.bias':
        'mask_decoder.iou_prediction_head.proj_out.bias',
        'sam_mask_decoder.pred_obj_score_head.layers.0.weight':
        'mask_decoder.pred_obj_score_head.proj_in.weight',
        'no_mem_embed':
        'no_memory_embedding',
    }
    for meta_key, hf_key in pairs.items():  # the same storage
        assert mapped[meta_key].data_ptr() == hf[hf_key].data_ptr(), meta_key
        assert mapped[meta_key].shape == hf[hf_key].shape
    for i in range(4):  # the stacked point embeddings, row by row
        torch.testing.assert_close(
            mapped[f'sam_prompt_encoder.point_embeddings.{i}.weight'],
            hf['prompt_encoder.point_embed.weight'][i:i + 1])


def test_mlp_depths_come_from_the_architecture(tiny_tools):
    model = hf_model(tiny_tools, iou_head_depth=4)
    depths = hf_mlp_depths(model)
    assert depths['mask_decoder.iou_prediction_head'] == 4
    assert depths['mask_decoder.transformer.layers.0.mlp'] == 2
    assert depths['vision_encoder.backbone.blocks.0.mlp'] == 2
    assert depths['mask_decoder.output_hypernetworks_mlps.3'] == 3
    mapped = to_meta(model)
    iou = sorted(
        k for k in mapped
        if k.startswith('sam_mask_decoder.iou_prediction_head.'))
    assert iou == [
        f'sam_mask_decoder.iou_prediction_head.layers.{i}.{p}'
        for i in range(4) for p in ('bias', 'weight')
    ]
    hf = model.state_dict()
    for i, name in ((3, 'proj_out'), (2, 'layers.1'), (0, 'proj_in')):
        assert mapped[
            f'sam_mask_decoder.iou_prediction_head.layers.{i}.'
            'weight'].data_ptr() == hf[
                f'mask_decoder.iou_prediction_head.{name}.weight'].data_ptr()


def test_inconsistent_hf_weights(tiny_tools):
    model = hf_model(tiny_tools)
    state = dict(model.state_dict())
    state['shared_image_embedding.positional_embedding'] = torch.zeros(2, 16)
    with pytest.raises(
            ValueError,
            match='test-dir: shared_image_embedding.positional_embedding and '
            'prompt_encoder.shared_embedding.positional_embedding differ'):
        to_meta(model, state)
    state = dict(model.state_dict())
    state['prompt_encoder.point_embed.weight'] = torch.zeros(3, 32)
    with pytest.raises(ValueError, match='3 rows, the config 4'):
        to_meta(model, state)
    state = dict(model.state_dict(), **{'mask_decoder.new.weight': 1})
    assert to_meta(model, state)['sam_mask_decoder.new.weight'] == 1


def test_official_file(tmp_path, tiny_tools):
    path = str(tmp_path / 'sam2.1_hiera_test.pt')
    written = tiny_tools.save_sam2(CFG, path, seed=0).state_dict()
    state = read_sam2_state_dict(path)
    assert list(state) == list(written)  # the whole SAM2Base
    for k, v in written.items():
        torch.testing.assert_close(state[k], v, atol=0, rtol=0, msg=k)
    torch.save({'state_dict': written}, tmp_path / 'mm.pth')
    with pytest.raises(
            ValueError,
            match=r"mm.pth is not an official SAM 2.1 "
            r"checkpoint: it has no 'model'.*state_dict"):
        read_sam2_state_dict(str(tmp_path / 'mm.pth'))
    torch.save({'model': {'a': 1}}, tmp_path / 'odd.pt')
    with pytest.raises(ValueError, match='odd.pt is not a state dict'):
        read_sam2_state_dict(str(tmp_path / 'odd.pt'))


def test_hf_directory(tmp_path, tiny_tools):
    out = str(tmp_path / 'hf')
    model = tiny_tools.save_hf_sam2(CFG, out, seed=0)
    state = read_sam2_state_dict(out)
    expected = to_meta(model)
    assert sorted(state) == sorted(expected)
    for k, v in expected.items():
        torch.testing.assert_close(state[k], v, atol=0, rtol=0, msg=k)
    with pytest.raises(FileNotFoundError, match='has no config.json'):
        read_sam2_state_dict(str(tmp_path))


def test_hf_video_directory_of_the_hub(tmp_path, tiny_tools):
    """``facebook/sam2.1-hiera-*`` are ``sam2_video`` directories:
    ``Sam2Model`` reads their image model (transformers skips the memory
    weights) and the renamed weights are the video model's."""
    import json

    from transformers import Sam2VideoConfig, Sam2VideoModel
    assert HF_SAM2_MODEL_TYPES == ('sam2', 'sam2_video')
    image = tiny_tools.hf_sam2_config(CFG)
    config = Sam2VideoConfig(
        vision_config=image.vision_config.to_dict(),
        prompt_encoder_config=image.prompt_encoder_config.to_dict(),
        mask_decoder_config=image.mask_decoder_config.to_dict(),
        memory_attention_hidden_size=32,
        memory_attention_num_layers=1,
        memory_encoder_hidden_size=32,
        memory_encoder_output_channels=16,
        mask_downsampler_embed_dim=32,
        memory_fuser_embed_dim=32)
    torch.manual_seed(0)
    video = Sam2VideoModel(config)
    with torch.no_grad():
        video.shared_image_embedding.positional_embedding.copy_(
            video.prompt_encoder.shared_embedding.positional_embedding)
    out = str(tmp_path / 'video')
    video.save_pretrained(out)
    with open(f'{out}/config.json') as f:
        assert json.load(f)['model_type'] == 'sam2_video'
    state = read_sam2_state_dict(out)
    assert {
        k: tuple(v.shape)
        for k, v in state.items()
    } == meta_image_model_shapes()
    hf = video.state_dict()
    assert any(k.startswith('memory_attention.') for k in hf)
    torch.testing.assert_close(
        state['image_encoder.trunk.blocks.3.attn.qkv.weight'],
        hf['vision_encoder.backbone.blocks.3.attn.qkv.weight'])
    torch.testing.assert_close(state['no_mem_embed'],
                               hf['no_memory_embedding'])
