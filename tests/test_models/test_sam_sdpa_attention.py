# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SDPA / FlexAttention attention for SAM's image encoder: parity with
segment-anything."""
import importlib
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from mmrsrefseg.models.utils import SAMSDPAAttention, replace_sam_attention
from mmrsrefseg.utils.sam_import import import_segment_anything

IMPLS = ('sdpa_folded', 'sdpa_mask', 'flex')


@pytest.fixture(autouse=True)
def flex_cpu_backward(monkeypatch):
    """Let FlexAttention's unfused CPU reference run its backward.

    ``flex_attention`` refuses inputs that require grad on CPU (PyTorch
    2.13: "FlexAttention does not support backward on CPU") in its device
    check, although the eager reference it runs on CPU has an autograd
    formula (through the ``score_mod``, gradients of captured tensors
    included). The check is lifted for CPU tensors only, so that the
    ``score_mod`` of ``impl='flex'`` is tested forward and backward here;
    the compiled CUDA kernels are tested by
    :func:`test_flex_compiled_cuda_parity` where a GPU exists.
    """
    module = importlib.import_module('torch.nn.attention.flex_attention')
    original = module._validate_device

    def validate(query, key, value):
        if query.device.type != 'cpu':
            original(query, key, value)

    monkeypatch.setattr(module, '_validate_device', validate)


def sam_attention(dim, heads, use_rel_pos, input_size, seed=0):
    """segment-anything's Attention with random (non-zero) rel_pos."""
    modeling, _ = import_segment_anything()
    torch.manual_seed(seed)
    attn = modeling.image_encoder.Attention(
        dim,
        num_heads=heads,
        qkv_bias=True,
        use_rel_pos=use_rel_pos,
        input_size=input_size)
    if use_rel_pos:
        torch.nn.init.normal_(attn.rel_pos_h, std=0.5)
        torch.nn.init.normal_(attn.rel_pos_w, std=0.5)
    return attn


def outputs_and_grads(module, x, grad_out):
    """Output and gradients w.r.t. ``x`` and every named parameter."""
    x = x.detach().requires_grad_()
    out = module(x)
    names = [n for n, _ in module.named_parameters()]
    grads = torch.autograd.grad(out, [x] + list(module.parameters()), grad_out)
    return dict(out=out, x=grads[0], **dict(zip(names, grads[1:])))


def assert_parity(ours, ref, tol):
    """Max abs difference <= tol * max(1, max |ref|), per tensor."""
    assert ours.keys() == ref.keys()
    for key in ref:
        scale = max(1.0, ref[key].abs().max().item())
        diff = (ours[key] - ref[key]).abs().max().item()
        assert diff <= tol * scale, f'{key}: {diff} > {tol} * {scale}'


# (batch, token grid H x W, rel_pos sized for, dim, heads, use_rel_pos)
CASES = {
    'window14': (3, (14, 14), (14, 14), 64, 4, True),
    'global16': (2, (16, 16), (16, 16), 64, 2, True),
    'global32': (2, (32, 32), (32, 32), 64, 2, True),
    'nonsquare': (2, (8, 12), (8, 12), 48, 3, True),
    'interp_rel_pos': (2, (16, 16), (14, 14), 32, 2, True),
    'no_rel_pos': (3, (14, 14), None, 64, 4, False),
}


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('case', list(CASES))
def test_attention_parity_fp32(impl, case):
    b, (h, w), size, dim, heads, rel = CASES[case]
    ref_mod = sam_attention(dim, heads, rel, size)
    ours_mod = SAMSDPAAttention.from_attention(ref_mod, impl)
    torch.manual_seed(1)
    x = torch.randn(b, h, w, dim)
    grad_out = torch.randn(b, h, w, dim)
    ref = outputs_and_grads(ref_mod, x, grad_out)
    ours = outputs_and_grads(ours_mod, x, grad_out)
    assert ours['out'].shape == (b, h, w, dim)
    if rel:
        assert {'rel_pos_h', 'rel_pos_w'} <= ref.keys()
        assert ref['rel_pos_h'].abs().max() > 1  # the terms matter
    assert_parity(ours, ref, 1e-5)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('case', ['window14', 'nonsquare', 'no_rel_pos'])
def test_attention_same_function_fp64(impl, case):
    """In float64 the rounding is gone: equal to 1e-12 (same function)."""
    b, (h, w), size, dim, heads, rel = CASES[case]
    ref_mod = sam_attention(dim, heads, rel, size).double()
    ours_mod = SAMSDPAAttention.from_attention(ref_mod, impl)
    torch.manual_seed(1)
    x = torch.randn(b, h, w, dim, dtype=torch.float64)
    grad_out = torch.randn(b, h, w, dim, dtype=torch.float64)
    assert_parity(
        outputs_and_grads(ours_mod, x, grad_out),
        outputs_and_grads(ref_mod, x, grad_out), 1e-12)


@torch.no_grad()
def test_bf16_autocast_no_less_accurate():
    """Under bf16 autocast, error vs float64 is no worse than the original.

    Relative L2 errors measured: original 1.4e-2, sdpa_mask 1.4e-2,
    sdpa_folded 0.8e-2 (the folded bias is accumulated in fp32 inside the
    kernel instead of being added in bf16).
    """
    ref_mod = sam_attention(256, 4, True, (14, 14))
    torch.manual_seed(1)
    x = torch.randn(2, 14, 14, 256)
    exact = ref_mod.double()(x.double())
    ref_mod.float()

    def error(module):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = module(x)
        assert out.dtype == torch.bfloat16
        return ((out.double() - exact).norm() / exact.norm()).item()

    original = error(ref_mod)
    assert 1e-3 < original < 5e-2
    for impl in IMPLS:
        ours = error(SAMSDPAAttention.from_attention(ref_mod, impl))
        assert ours <= 1.25 * original, (impl, ours, original)


def test_folded_bias_hand_computed():
    """One head, 1x2 grid, zero q/k: softmax of the rel-pos logits only."""
    attn = SAMSDPAAttention(
        2, num_heads=1, use_rel_pos=True, input_size=(1, 2))
    with torch.no_grad():
        # q = x, k = 0, v = x[..., ::-1]
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        attn.qkv.weight[0:2] = torch.eye(2)
        attn.qkv.weight[4:6] = torch.eye(2).flip(0)
        attn.proj.weight.copy_(torch.eye(2))
        attn.proj.bias.zero_()
        attn.rel_pos_w.copy_(torch.tensor([[1., 0.], [0., 0.], [0., 1.]]))
    # tokens x0 = (1, 0) at column 0, x1 = (0, 2) at column 1; rel index
    # (q_col - k_col) + 1: query 0 sees keys with logits q0.R[1], q0.R[0]
    # = (0, 1); query 1: q1.R[2], q1.R[1] = (2, 0)
    x = torch.tensor([[[[1., 0.], [0., 2.]]]])
    v = torch.tensor([[0., 1.], [2., 0.]])
    p0 = torch.softmax(torch.tensor([0., 1.]), 0)
    p1 = torch.softmax(torch.tensor([2., 0.]), 0)
    expected = torch.stack([p0 @ v, p1 @ v]).view(1, 1, 2, 2)
    for impl in IMPLS:
        attn.impl = impl
        torch.testing.assert_close(attn(x), expected)


def tiny_encoder(seed=0):
    modeling, _ = import_segment_anything()
    torch.manual_seed(seed)
    enc = modeling.ImageEncoderViT(
        img_size=64,
        patch_size=4,
        embed_dim=32,
        depth=3,
        num_heads=2,
        mlp_ratio=2,
        out_chans=16,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=6,  # 16x16 tokens -> padded to 18x18, 9 windows
        global_attn_indexes=(1, ))
    for blk in enc.blocks:
        torch.nn.init.normal_(blk.attn.rel_pos_h, std=0.5)
        torch.nn.init.normal_(blk.attn.rel_pos_w, std=0.5)
    torch.nn.init.normal_(enc.pos_embed, std=0.5)
    return enc


@pytest.mark.parametrize('impl', IMPLS)
def test_image_encoder_replacement(impl):
    enc = tiny_encoder()
    torch.manual_seed(1)
    images = torch.randn(2, 3, 64, 64)
    grad_out = torch.randn(2, 16, 16, 16)
    ref = outputs_and_grads(enc, images, grad_out)
    keys = list(enc.state_dict())
    params = [id(p) for p in enc.parameters()]
    assert replace_sam_attention(enc, impl) == 3
    assert all(
        isinstance(blk.attn, SAMSDPAAttention) and blk.attn.impl == impl
        for blk in enc.blocks)
    # same parameter objects, same keys
    assert [id(p) for p in enc.parameters()] == params
    assert list(enc.state_dict()) == keys
    ours = outputs_and_grads(enc, images, grad_out)
    assert ref['blocks.1.attn.rel_pos_h'].abs().max() > 1
    assert_parity(ours, ref, 1e-5)
    # and back: segment-anything's own Attention, bit-identical again
    modeling, _ = import_segment_anything()
    assert replace_sam_attention(enc, 'original') == 3
    assert all(
        type(blk.attn) is modeling.image_encoder.Attention
        for blk in enc.blocks)
    assert [id(p) for p in enc.parameters()] == params
    back = outputs_and_grads(enc, images, grad_out)
    for key in ref:
        assert torch.equal(back[key], ref[key]), key


def test_state_dict_round_trip():
    ref = tiny_encoder(seed=0)
    ours = tiny_encoder(seed=1)
    replace_sam_attention(ours, 'sdpa_folded')
    state = ref.state_dict()
    ours.load_state_dict(state, strict=True)
    for key, value in ours.state_dict().items():
        assert torch.equal(value, state[key]), key
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), ref(images))
    # and from ours into segment-anything's, strictly
    again = tiny_encoder(seed=2)
    again.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(again(images), ref(images))


def test_train_eval_mode_kept():
    enc = tiny_encoder()
    enc.eval()
    replace_sam_attention(enc, 'sdpa_mask')
    assert not any(m.training for m in enc.modules())


def test_flex_cpu_backward_refused_by_pytorch(monkeypatch):
    """Without the test's lifted check PyTorch refuses it (documented)."""
    monkeypatch.undo()
    ref = sam_attention(16, 2, True, (4, 4))
    ours = SAMSDPAAttention.from_attention(ref, 'flex')
    x = torch.randn(1, 4, 4, 16)
    with torch.no_grad():  # the forward alone runs on CPU
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)
    with pytest.raises(NotImplementedError, match='backward on CPU'):
        ours(x)


def test_auto_chooses_by_device():
    """'auto': the folded SDPA on CPU (bit for bit), flex on CUDA."""
    ref = sam_attention(32, 2, True, (8, 8))
    auto = SAMSDPAAttention.from_attention(ref, 'auto')
    folded = SAMSDPAAttention.from_attention(ref, 'sdpa_folded')
    x = torch.randn(2, 8, 8, 32)
    assert auto.impl_for(x) == 'sdpa_folded'
    assert auto.impl_for(SimpleNamespace(is_cuda=True)) == 'flex'
    assert folded.impl_for(SimpleNamespace(is_cuda=True)) == 'sdpa_folded'
    assert torch.equal(auto(x), folded(x))
    enc = tiny_encoder()  # block 1 global, blocks 0 and 2 windowed
    replace_sam_attention(enc, 'auto')
    assert [blk.attn.impl
            for blk in enc.blocks] == ['sdpa_folded', 'auto', 'sdpa_folded']


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('case', ['window14', 'global32', 'nonsquare'])
def test_flex_compiled_cuda_parity(case):
    """The compiled FlexAttention kernels (forward and backward) on CUDA.

    fp32 with TF32 off (PyTorch's default for matmuls): the generated
    kernels accumulate in another order than segment-anything's matmuls.
    """
    b, (h, w), size, dim, heads, rel = CASES[case]
    ref_mod = sam_attention(dim, heads, rel, size).cuda()
    ours_mod = SAMSDPAAttention.from_attention(ref_mod, 'auto')
    torch.manual_seed(1)
    x = torch.randn(b, h, w, dim, device='cuda')
    grad_out = torch.randn(b, h, w, dim, device='cuda')
    assert ours_mod.impl_for(x) == 'flex'
    assert_parity(
        outputs_and_grads(ours_mod, x, grad_out),
        outputs_and_grads(ref_mod, x, grad_out), 1e-4)


def test_errors():
    with pytest.raises(ValueError, match="'flash'"):
        replace_sam_attention(tiny_encoder(), 'flash')
    with pytest.raises(TypeError, match='Linear'):
        replace_sam_attention(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match='input_size'):
        SAMSDPAAttention(8, 2, use_rel_pos=True)
    with pytest.raises(ValueError, match='divisible'):
        SAMSDPAAttention(10, 4)
    attn = SAMSDPAAttention(8, 2)
    with pytest.raises(ValueError, match="'original'"):
        attn.impl = 'original'


@pytest.mark.parametrize('impl', IMPLS)
def test_traces_as_one_graph_for_torch_compile(impl):
    """No graph break in the forward (``compile=True`` in a config).

    The import of segment-anything's ``get_rel_pos`` happens when the module
    is built; inside the forward it would stop dynamo (``sys.modules``).
    ``backend='eager'`` traces with dynamo without compiling code.
    """
    torch._dynamo.reset()
    ref = sam_attention(32, 2, True, (8, 8))
    ours = SAMSDPAAttention.from_attention(ref, impl)
    x = torch.randn(2, 8, 8, 32)
    compiled = torch.compile(ours, backend='eager', fullgraph=True)
    torch.testing.assert_close(compiled(x), ref(x), atol=1e-5, rtol=1e-5)
