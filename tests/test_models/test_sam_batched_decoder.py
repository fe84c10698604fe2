# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Batched SAM mask decoder: parity with segment-anything's per-image loop."""
import pytest
import torch

from mmrsrefseg.models.utils import batched_mask_decoder_forward
from mmrsrefseg.utils.sam_import import import_segment_anything

# transformer_dim, heads, mlp_dim, iou hidden, embedding grid
DIMS = {
    'tiny': (32, 2, 64, 32, 8),
    'real': (256, 8, 2048, 256, 16),  # SAM's dims, smaller grid (64 at 1024)
}


def mask_decoder(dim, heads, mlp_dim, iou_hidden, seed=0):
    modeling, _ = import_segment_anything()
    torch.manual_seed(seed)
    return modeling.MaskDecoder(
        num_multimask_outputs=3,
        transformer=modeling.TwoWayTransformer(
            depth=2, embedding_dim=dim, mlp_dim=mlp_dim, num_heads=heads),
        transformer_dim=dim,
        iou_head_depth=3,
        iou_head_hidden_dim=iou_hidden)


def make_inputs(b, dim, grid, num_prompts=5, shared_dense=False):
    torch.manual_seed(1)
    dense_b = 1 if shared_dense else b
    return dict(
        image_embeddings=torch.randn(b, dim, grid, grid),
        image_pe=torch.randn(1, dim, grid, grid),
        sparse_prompt_embeddings=torch.randn(b, num_prompts, dim),
        dense_prompt_embeddings=torch.randn(dense_b, dim, grid, grid))


def per_image(decoder, inputs, multimask_output):
    """segment-anything's own MaskDecoder, image by image (Sam.forward)."""
    b = inputs['image_embeddings'].shape[0]
    dense = inputs['dense_prompt_embeddings'].expand(b, -1, -1, -1)
    outs = [
        decoder(
            image_embeddings=inputs['image_embeddings'][i:i + 1],
            image_pe=inputs['image_pe'],
            sparse_prompt_embeddings=inputs['sparse_prompt_embeddings'][i:i +
                                                                        1],
            dense_prompt_embeddings=dense[i:i + 1],
            multimask_output=multimask_output) for i in range(b)
    ]
    return tuple(torch.cat(x) for x in zip(*outs))


def batched(decoder, inputs, multimask_output):
    return batched_mask_decoder_forward(
        decoder, multimask_output=multimask_output, **inputs)


def outputs_and_grads(fn, decoder, inputs, multimask_output, seed=2):
    inputs = {k: v.detach().requires_grad_() for k, v in inputs.items()}
    masks, iou = fn(decoder, inputs, multimask_output)
    torch.manual_seed(seed)
    loss = (masks * torch.randn_like(masks)).sum() + (
        iou * torch.randn_like(iou)).sum()
    names = list(inputs) + [n for n, _ in decoder.named_parameters()]
    tensors = list(inputs.values()) + list(decoder.parameters())
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    result = dict(masks=masks, iou=iou)
    for name, grad in zip(names, grads):
        result[name] = grad
    return result


@pytest.mark.parametrize('multimask_output', [False, True])
@pytest.mark.parametrize('b', [1, 3])
@pytest.mark.parametrize('dims', list(DIMS))
def test_batched_equals_per_image(dims, b, multimask_output):
    dim, heads, mlp_dim, iou_hidden, grid = DIMS[dims]
    decoder = mask_decoder(dim, heads, mlp_dim, iou_hidden)
    inputs = make_inputs(b, dim, grid)
    ref = outputs_and_grads(per_image, decoder, inputs, multimask_output)
    ours = outputs_and_grads(batched, decoder, inputs, multimask_output)
    m = 3 if multimask_output else 1
    assert ours['masks'].shape == (b, m, 4 * grid, 4 * grid)
    assert ours['iou'].shape == (b, m)
    assert ref.keys() == ours.keys()
    for key in ref:
        assert ref[key] is not None and ours[key] is not None, key
        scale = max(1.0, ref[key].abs().max().item())
        diff = (ours[key] - ref[key]).abs().max().item()
        assert diff <= 1e-5 * scale, f'{key}: {diff} > 1e-5 * {scale}'


def test_rows_are_independent():
    """Row i of the output depends on row i of the inputs only."""
    dim, heads, mlp_dim, iou_hidden, grid = DIMS['tiny']
    decoder = mask_decoder(dim, heads, mlp_dim, iou_hidden)
    inputs = make_inputs(3, dim, grid)
    with torch.no_grad():
        masks, _ = batched(decoder, inputs, False)
        changed = {k: v.clone() for k, v in inputs.items()}
        changed['image_embeddings'][1] += 1
        changed['sparse_prompt_embeddings'][1] -= 1
        masks2, _ = batched(decoder, changed, False)
    assert torch.equal(masks[0], masks2[0])
    assert torch.equal(masks[2], masks2[2])
    assert (masks[1] - masks2[1]).abs().max() > 1e-2


def test_shared_dense_prompt():
    dim, heads, mlp_dim, iou_hidden, grid = DIMS['tiny']
    decoder = mask_decoder(dim, heads, mlp_dim, iou_hidden)
    inputs = make_inputs(3, dim, grid, shared_dense=True)
    with torch.no_grad():
        ours = batched(decoder, inputs, False)
        ref = per_image(decoder, inputs, False)
    torch.testing.assert_close(ours[0], ref[0], rtol=0, atol=1e-5)


def test_bad_shapes():
    dim, heads, mlp_dim, iou_hidden, grid = DIMS['tiny']
    decoder = mask_decoder(dim, heads, mlp_dim, iou_hidden)
    inputs = make_inputs(2, dim, grid)
    bad = dict(inputs, sparse_prompt_embeddings=torch.randn(3, 5, dim))
    with pytest.raises(ValueError, match='sparse_prompt_embeddings'):
        batched(decoder, bad, False)
    bad = dict(inputs, image_pe=torch.randn(2, dim, grid, grid))
    with pytest.raises(ValueError, match='image_pe'):
        batched(decoder, bad, False)
    bad = dict(
        inputs, dense_prompt_embeddings=torch.randn(2, dim, grid, grid + 1))
    with pytest.raises(ValueError, match='dense_prompt_embeddings'):
        batched(decoder, bad, False)
