# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAMPromptHead: parity with segment-anything, presets, strict loading."""
import pytest
import torch

from mmrsrefseg.models import SAMPromptHead
from mmrsrefseg.utils.sam_import import import_segment_anything

TINY = dict(
    sam_type=None,
    encoder_cfg=dict(
        embed_dim=32,
        depth=2,
        num_heads=2,
        global_attn_indexes=(1, ),
        window_size=4,
        patch_size=8),
    decoder_cfg=dict(mlp_dim=64, num_heads=2, iou_head_hidden_dim=32),
    image_size=64,
    prompt_channels=32,
    transformer_norm_eps=1e-5)  # segment-anything's modules as released


def predict(head, images, sparse, mask_prompt):
    """Image embeddings, then prompt encoder and mask decoder."""
    return head(head.encode_image(images), sparse, mask_prompt)


def official_sam(head):
    modeling, _ = import_segment_anything()
    return modeling.Sam(
        image_encoder=head.image_encoder,
        prompt_encoder=head.prompt_encoder,
        mask_decoder=head.mask_decoder)


@pytest.fixture(scope='module')
def sam_file(tmp_path_factory):
    """A tiny SAM saved with official key names (Sam.state_dict())."""
    torch.manual_seed(7)
    head = SAMPromptHead(**TINY)
    sam = official_sam(head)
    path = tmp_path_factory.mktemp('sam') / 'sam_vit_tiny.pth'
    torch.save(sam.state_dict(), path)
    return path, sam.eval()


@torch.no_grad()
@pytest.mark.parametrize('with_mask', [True, False])
def test_parity_with_segment_anything(sam_file, with_mask):
    path, sam = sam_file
    torch.manual_seed(0)
    head = SAMPromptHead(checkpoint=str(path), **TINY)
    head.init_weights()
    head.eval()
    images = torch.rand(2, 3, 64, 64) * 255
    sparse = torch.randn(2, 5, 32)
    masks = torch.randn(2, 1, 32, 32) if with_mask else None
    ours = predict(head, images, sparse, masks)
    assert ours.shape == (2, 1, 32, 32)
    # segment-anything's own chain, image by image (Sam.forward's loop)
    emb = sam.image_encoder(sam.preprocess(images))
    for i in range(2):
        sp, dense = sam.prompt_encoder(
            points=None,
            boxes=None,
            masks=None if masks is None else masks[i:i + 1])
        ref, _ = sam.mask_decoder(
            image_embeddings=emb[i:i + 1],
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=torch.cat([sp, sparse[i:i + 1]], 1),
            dense_prompt_embeddings=dense,
            multimask_output=False)
        torch.testing.assert_close(ours[i:i + 1], ref, atol=1e-5, rtol=0)


def test_presets_equal_sam_model_registry():
    _, build_sam = import_segment_anything()
    ours = SAMPromptHead(sam_type='vit_b')
    ref = build_sam.sam_model_registry['vit_b']()
    ours_shapes = {
        k: tuple(v.shape)
        for k, v in ours.state_dict().items()
        if k.split('.')[0] in ('image_encoder', 'prompt_encoder',
                               'mask_decoder')
    }
    ref_shapes = {
        k: tuple(v.shape)
        for k, v in ref.state_dict().items()
        if k not in ('pixel_mean', 'pixel_std')
    }
    assert ours_shapes == ref_shapes
    assert ours.image_embedding_size == (64, 64)
    assert ours.mask_prompt_size == (256, 256)


def test_strict_loading_errors(sam_file, tmp_path):
    path, _ = sam_file
    state = torch.load(path, weights_only=True)
    missing = dict(state)
    missing.pop('mask_decoder.iou_token.weight')
    torch.save(missing, tmp_path / 'missing.pth')
    head = SAMPromptHead(checkpoint=str(tmp_path / 'missing.pth'), **TINY)
    with pytest.raises(KeyError, match='mask_decoder.iou_token.weight'):
        head.init_weights()
    extra = dict(state, **{'image_encoder.extra.weight': torch.zeros(1)})
    torch.save(extra, tmp_path / 'extra.pth')
    head = SAMPromptHead(checkpoint=str(tmp_path / 'extra.pth'), **TINY)
    with pytest.raises(KeyError, match='image_encoder.extra.weight'):
        head.init_weights()
    shape = dict(state)
    shape['image_encoder.pos_embed'] = torch.zeros(1, 2, 2, 32)
    torch.save(shape, tmp_path / 'shape.pth')
    head = SAMPromptHead(checkpoint=str(tmp_path / 'shape.pth'), **TINY)
    with pytest.raises(ValueError, match='image_encoder.pos_embed'):
        head.init_weights()


def test_wrong_input_size():
    head = SAMPromptHead(**TINY)
    with pytest.raises(ValueError, match='64x64'):
        head.encode_image(torch.zeros(1, 3, 32, 32))


def test_activation_checkpointing_is_exact():
    torch.manual_seed(0)
    head = SAMPromptHead(**TINY)
    cp = SAMPromptHead(with_cp=True, **TINY)
    cp.load_state_dict(head.state_dict())
    images = torch.rand(2, 3, 64, 64) * 255
    sparse = torch.randn(2, 5, 32)
    outs = []
    for model in (head, cp):
        out = predict(model, images, sparse, None)
        out.square().mean().backward()
        outs.append((out, model.image_encoder.blocks[0].attn.qkv.weight.grad))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


@torch.no_grad()
def test_attention_switches_give_the_same_masks():
    """attn_impl / batched_decoder: one function."""
    from mmrsrefseg.models.utils import SAMSDPAAttention
    cfg = dict(
        sam_type=None,
        encoder_cfg=dict(
            embed_dim=32,
            depth=3,
            num_heads=2,
            global_attn_indexes=(1, ),
            window_size=4),
        image_size=128,
        prompt_channels=32,
        decoder_cfg=dict(mlp_dim=64, num_heads=2, iou_head_hidden_dim=32))
    torch.manual_seed(0)
    reference = SAMPromptHead(
        **cfg, attn_impl='original', batched_decoder=False).eval()
    images = torch.rand(2, 3, 128, 128) * 255
    sparse, prompt = torch.randn(2, 5, 32), torch.randn(2, 1, 32, 32)
    expected = predict(reference, images, sparse, prompt)
    for options in (dict(), dict(attn_impl='sdpa_mask')):
        head = SAMPromptHead(**cfg, **options).eval()
        head.load_state_dict(reference.state_dict())
        folded = [
            isinstance(b.attn, SAMSDPAAttention)
            for b in head.image_encoder.blocks
        ]
        assert folded == [True] * 3
        torch.testing.assert_close(
            predict(head, images, sparse, prompt), expected, atol=1e-5, rtol=0)


def test_transformer_norm_eps():
    """The authors' 1e-6 in the eight block norms (transformers'
    SamMaskDecoder), 1e-5 in the final one; 1e-5 everywhere on request."""
    head = SAMPromptHead(**dict(TINY, transformer_norm_eps=1e-6))
    transformer = head.mask_decoder.transformer
    eps = [
        getattr(block, f'norm{i}').eps for block in transformer.layers
        for i in range(1, 5)
    ]
    assert eps == [1e-6] * 8
    assert transformer.norm_final_attn.eps == 1e-5
    default = SAMPromptHead(**{
        k: v
        for k, v in TINY.items() if k != 'transformer_norm_eps'
    })
    assert default.mask_decoder.transformer.layers[0].norm1.eps == 1e-6
    sam = SAMPromptHead(**TINY).mask_decoder.transformer
    assert {
        getattr(b, f'norm{i}').eps
        for b in sam.layers
        for i in range(1, 5)
    } == {1e-5}
