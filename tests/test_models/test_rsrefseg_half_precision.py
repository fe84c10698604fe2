# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RSRefSeg with the whole model in half precision, on CPU.

DeepSpeed's fp16 strategy (the authors' ``-deepspeed-fp16`` configs) casts
the module to ``torch.float16`` and the images to half
(``inputs_to_half``); bf16 strategies cast to ``torch.bfloat16``. Any op that
builds a float32 tensor and meets a half weight fails there (segment-anything's
dense positional encoding did, on the GPU). The same cast on CPU catches such
dtype errors without a GPU: loss, backward and prediction must run, in the
cast dtype, and stay close to the float32 model on the same weights.
The CLIP resize is bilinear (the paper configs'): PyTorch's CPU has no
half-precision antialiased bicubic kernel.
"""
import copy

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

TEXTS = ['the red vehicle on the left', 'A airplane at the bottom']
#: Max |half - fp32| of the mask logits, relative to max |fp32 logits|;
#: measured 0.3 % (fp16) and 2.7 % (SigLIP) / 5.0 % (CLIP) (bf16: 8
#: significant bits) on these tiny models.
TOLERANCE = {torch.float16: 0.02, torch.bfloat16: 0.1}


def make_data(size, n=2):
    """uint8 images and data samples with texts and masks."""
    g = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
        for _ in range(n)
    ]
    samples = []
    for i in range(n):
        s = SegDataSample(
            metainfo=dict(
                text=TEXTS[i % len(TEXTS)],
                img_shape=(size, size),
                pad_shape=(size, size),
                ori_shape=(size + 20, size - 10)))
        gt = torch.zeros(1, size, size, dtype=torch.long)
        gt[:, size // 4:size // 2, size // 3:3 * size // 4] = 1
        s.gt_sem_seg = PixelData(data=gt)
        samples.append(s)
    return dict(inputs=images, data_samples=samples)


def build_pair(cfg, dtype, **head):
    """(float32 model, the same weights cast to ``dtype``), LoRA acting."""
    cfg = copy.deepcopy(cfg)
    cfg.decode_head.update(head)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():  # peft starts lora_B at 0: make the adapters act
        for name, p in model.named_parameters():
            if 'lora_B' in name:
                p.normal_(0, 0.05)
    return model, copy.deepcopy(model).to(dtype)


def half_inputs(model, data, dtype):
    """The data preprocessor, then DeepSpeed's ``inputs_to_half`` cast."""
    data = model.data_preprocessor(copy.deepcopy(data), True)
    return data['inputs'].to(dtype), data['data_samples']


@pytest.mark.parametrize(
    'dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
@pytest.mark.parametrize('which', ['clip', 'siglip'])
def test_loss_backward_predict_in_half(model_cfgs, which, dtype):
    cfg, size = model_cfgs[which]
    ref, model = build_pair(cfg, dtype)
    assert all(p.dtype == dtype for p in model.parameters())
    inputs, samples = half_inputs(model, make_data(size), dtype)
    assert inputs.dtype == dtype

    # prediction first: a training forward moves BN running statistics
    model.eval()
    ref.eval()
    with torch.no_grad():
        logits = model(inputs, samples, mode='tensor')
        expected = ref(inputs.float(), samples, mode='tensor')
        preds = model(inputs, copy.deepcopy(samples), mode='predict')
    assert logits.dtype == dtype
    scale = expected.abs().max().item()
    assert scale > 0.05  # the comparison is not between two near-zero maps
    error = (logits.float() - expected).abs().max().item()
    assert error <= TOLERANCE[dtype] * scale, (error, scale)
    same = ((logits > 0) == (expected > 0)).float().mean().item()
    assert same >= 0.98, same
    assert preds[0].pred_sem_seg.data.shape == (1, *samples[0].ori_shape)
    assert set(preds[0].pred_sem_seg.data.unique().tolist()) <= {0., 1.}

    model.train()
    losses = model(inputs, samples, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad]
    assert any('lora_' in n for n, _ in trainable)
    for name, p in trainable:
        assert p.grad is not None and p.grad.dtype == dtype, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize('attn_impl', ['sdpa_mask', 'original'])
def test_other_attention_in_fp16(model_cfgs, attn_impl):
    """The non-default SAM attentions run in half as well."""
    cfg, size = model_cfgs['clip']
    ref, model = build_pair(cfg, torch.float16, attn_impl=attn_impl)
    inputs, samples = half_inputs(model, make_data(size), torch.float16)
    losses = model(inputs, samples, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(
        torch.isfinite(p.grad).all() for p in model.parameters()
        if p.requires_grad)
    with torch.no_grad():
        logits = model.eval()(inputs, samples, mode='tensor')
        expected = ref.eval()(inputs.float(), samples, mode='tensor')
    error = (logits.float() - expected).abs().max().item()
    assert error <= 0.02 * expected.abs().max().item()


def test_dense_pe_in_the_buffer_dtype(model_cfgs):
    """segment-anything's float32 coordinates meet a half buffer: the head
    computes the encoding from a float32 view and returns the half dtype."""
    cfg, _ = model_cfgs['clip']
    torch.manual_seed(0)
    head = MODELS.build(copy.deepcopy(cfg.decode_head))
    expected = head.dense_pe((5, 7))
    pe_layer = head.prompt_encoder.pe_layer.half()
    with pytest.raises(RuntimeError, match='dtype'):
        pe_layer((5, 7))  # segment-anything's own module, cast
    pe = head.dense_pe((5, 7))
    assert pe.dtype == torch.float16 and pe.shape == (64, 5, 7)
    # from the fp16-rounded Gaussian, in float32: fp16 output rounding only
    assert (pe.float() - expected).abs().max() < 0.02
